//! Reading the files users name (rules, models, and in `lepton-sim` the
//! trace and workloads): whole, within a bound, and only from something
//! that ends.

use std::io::Read;
use std::path::Path;

/// Reads `path` whole. Only a regular file or a pipe (a process
/// substitution, standard input) is read: a device such as `/dev/zero`
/// never ends. More than `max` bytes is an error naming the bound.
///
/// # Errors
/// The open or read error; `InvalidInput` for anything else than a file or
/// a pipe, `InvalidData` past `max` bytes.
pub fn read_bounded(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileTypeExt;
    let file = std::fs::File::open(path)?;
    let kind = file.metadata()?.file_type();
    if !(kind.is_file() || kind.is_fifo()) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file or a pipe",
        ));
    }
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {} MiB, the most read", max >> 20),
        ));
    }
    Ok(bytes)
}

/// The most bytes of a rules file read (16 MiB).
pub const MAX_RULES_BYTES: u64 = 16 << 20;

/// The most bytes of a model file read (64 MiB).
pub const MAX_MODEL_BYTES: u64 = 64 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_oversized_files_are_refused_files_and_pipes_read() {
        let error = read_bounded(Path::new("/dev/zero"), 1 << 20).expect_err("a device");
        assert!(error.to_string().contains("not a regular file"), "{error}");
        let path = std::env::temp_dir().join(format!("lepton-bounded-{}", std::process::id()));
        std::fs::write(&path, vec![b'x'; 2048]).expect("write");
        assert_eq!(read_bounded(&path, 2048).expect("read").len(), 2048);
        let error = read_bounded(&path, 2047).expect_err("too large");
        assert!(error.to_string().contains("larger than"), "{error}");
        let _ = std::fs::remove_file(path);
    }
}
