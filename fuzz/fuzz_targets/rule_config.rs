//! The rule policy's config parser on arbitrary text, as TOML and as JSON:
//! it may refuse it, with an error naming a line, but never panic.

#![no_main]

use lepton_policies::{Error, RulePolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    // Counting the empty line after a final newline too.
    let lines = text.split('\n').count();
    for parsed in [
        RulePolicy::from_toml_str(text),
        RulePolicy::from_json_str(text),
    ] {
        if let Err(Error::RuleConfig { line, .. }) = parsed {
            assert!(
                (1..=lines).contains(&line),
                "error on line {line} of {lines}"
            );
        }
    }
});
