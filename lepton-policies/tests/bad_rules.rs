//! Bad rules files, read the way the command line reads them
//! (`RulePolicy::from_path`): each is a typed error naming the file, the
//! line and the value. The parser's own tests (`rule/config.rs`) go through
//! every message; this is the catalogue of inputs at the public entry point.

use std::path::PathBuf;

use lepton_policies::{Error, RulePolicy};

/// Writes `text` to a fresh file named `name` and returns its path.
fn rules_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lepton-bad-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("temp file");
    path
}

#[test]
fn bad_rules_files_name_file_line_and_value() {
    let spread = "[[score]]\nrule = \"spread\"\n";
    let cases = [
        ("empty.json", String::new(), 1, "EOF while parsing a value"),
        (
            "blank.json",
            "\n\n".to_owned(),
            2,
            "EOF while parsing a value",
        ),
        ("nan.toml", format!("{spread}weight = nan\n"), 3, "got NaN"),
        ("inf.toml", format!("{spread}weight = inf\n"), 3, "got inf"),
        (
            "minus_inf.toml",
            format!("{spread}weight = -inf\n"),
            3,
            "got -inf",
        ),
        (
            "negative.toml",
            format!("{spread}weight = -2\n"),
            3,
            "got -2",
        ),
        ("zero.toml", format!("{spread}weight = 0.0\n"), 3, "got 0"),
        (
            "huge.toml",
            format!("{spread}weight = 1e999\n"),
            3,
            "floating-point number overflowed",
        ),
        (
            "cap.toml",
            "[[filter]]\nmax_cpu_utilization = nan\n".to_owned(),
            2,
            "got NaN",
        ),
        (
            "scorer.toml",
            "[[score]]\nrule = \"fastest\"\n".to_owned(),
            2,
            "unknown scorer \"fastest\"",
        ),
        (
            "filter.toml",
            "[[filter]]\nmax_disk = 0.5\n".to_owned(),
            2,
            "unknown filter \"max_disk\"",
        ),
        (
            "nan.json",
            "{\"score\": [\n{\"rule\": \"spread\", \"weight\": NaN}]}".to_owned(),
            2,
            "expected value",
        ),
        (
            "string.json",
            "{\"score\": [\n{\"rule\": \"spread\", \"weight\": \"inf\"}]}".to_owned(),
            2,
            "string \"inf\"",
        ),
        (
            "negative.json",
            "{\"score\": [\n{\"rule\": \"spread\", \"weight\": -1}]}".to_owned(),
            2,
            "got -1",
        ),
        (
            "huge.json",
            "{\"score\": [\n{\"rule\": \"spread\", \"weight\": 1e999}]}".to_owned(),
            2,
            "number out of range",
        ),
        (
            "scorer.json",
            "{\"score\": [\n{\"rule\": \"fastest\"}]}".to_owned(),
            2,
            "unknown scorer \"fastest\"",
        ),
        (
            "filter.json",
            "{\"filter\": [\n{\"max_disk\": 0.5}]}".to_owned(),
            2,
            "unknown filter \"max_disk\"",
        ),
        (
            "truncated.json",
            "{\"score\": [\n{\"rule\": \"spr".to_owned(),
            2,
            "EOF while parsing",
        ),
    ];
    for (name, text, line, names) in cases {
        let path = rules_file(name, &text);
        let error = RulePolicy::from_path(&path).unwrap_err();
        let Error::RuleConfig {
            origin,
            line: at,
            message,
        } = &error
        else {
            panic!("{name}: expected a rule config error, got {error:?}");
        };
        assert_eq!(
            (origin.as_str(), *at),
            (path.to_str().unwrap(), line),
            "{name}: {error}"
        );
        assert!(message.contains(names), "{name}: {error}");
    }
}

#[test]
fn a_file_without_rules_and_unreadable_files_are_typed_errors() {
    // TOML's empty document is an empty table: no filter, no scorer, which
    // would place as first fit without a word.
    // Names of their own: the tests run at once, in one directory.
    for (name, text) in [("no-rules.toml", ""), ("no-rules.json", "{}")] {
        let path = rules_file(name, text);
        assert!(matches!(
            RulePolicy::from_path(&path),
            Err(Error::RuleConfig { ref origin, line: 1, ref message })
                if *origin == path.display().to_string() && message.contains("no rules")
        ));
    }
    let wrong_extension = rules_file("rules.yaml", "score: []\n");
    assert!(matches!(
        RulePolicy::from_path(&wrong_extension),
        Err(Error::RulesFileExtension { path }) if path.ends_with("rules.yaml")
    ));
    let missing = PathBuf::from("/nonexistent/rules.toml");
    assert!(matches!(
        RulePolicy::from_path(&missing),
        Err(Error::RulesFileUnreadable { path, .. }) if path == "/nonexistent/rules.toml"
    ));
    let binary = std::env::temp_dir().join(format!("lepton-bad-rules-{}.toml", std::process::id()));
    std::fs::write(&binary, [0xff, 0xfe, b'\n']).expect("temp file");
    assert!(matches!(
        RulePolicy::from_path(&binary),
        Err(Error::RulesFileUnreadable { .. })
    ));
}
