//! The node's `config.toml` (node/src/config.rs): TOML parsing of `NodeConfig` and `validate()`.
//!
//! Properties: an accepted file re-serializes (`toml::to_string_pretty`, as `save` writes it)
//! and parses back to an equal config; `validate` never panics and gives the same answer on the
//! round-tripped config.
#![no_main]

use hotledger_node::config::NodeConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = toml::from_str::<NodeConfig>(text) else {
        return;
    };
    let valid = config.validate();
    let saved = toml::to_string_pretty(&config).expect("an accepted config serializes");
    let back: NodeConfig = toml::from_str(&saved).expect("a saved config parses");
    assert_eq!(back, config, "TOML round trip");
    assert_eq!(back.validate(), valid, "validation changed on a round trip");
});
