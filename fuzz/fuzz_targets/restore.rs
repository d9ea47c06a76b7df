//! Any bytes as the contents of checkpoints and changelog records (a snapshot, the
//! changes after it, account records and tombstones) restored into an engine with the
//! default config, then events for every restored account: a damaged or hostile
//! checkpoint is refused or restored, and what is restored carries on, never a panic.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use radar_core::Engine;

#[path = "../settings.rs"]
mod settings;

/// Event types that touch every part of an account's state: windows, usage, entitlement,
/// health, dates.
const TYPES: [&str; 6] = [
    "user_login",
    "seat_threshold_90pct",
    "feature_limit_hit",
    "api_usage_reported",
    "team_invite_sent",
    "payment_failed",
];

fuzz_target!(|data: &[u8]| {
    let Some((mode, bytes)) = data.split_first() else {
        return;
    };
    // The bytes in two, for the modes that restore twice.
    let (first, second) = bytes.split_at(bytes.len() / 2);
    let settings = settings::default();
    let mut engine = Engine::new(Arc::clone(&settings));
    let restored = match mode % 5 {
        // A local checkpoint: a snapshot, or a snapshot and the changes after it.
        0 => Engine::restore(settings, bytes).map(|restored| engine = restored),
        1 => Engine::restore(settings, first)
            .map(|restored| engine = restored)
            .and_then(|()| engine.apply_changes(second)),
        2 => engine.apply_changes(bytes),
        // Changelog records: an account's state, then another over it or its tombstone.
        3 => engine
            .restore_account("acct_fuzz", first)
            .and_then(|()| engine.restore_account("acct_fuzz", second)),
        _ => engine.restore_account("acct_fuzz", bytes).map(|()| {
            let _ = engine.changed_account_records();
            engine.remove_account("acct_fuzz");
        }),
    };
    if restored.is_err() {
        return;
    }
    let accounts: Vec<String> = engine.accounts().map(|(id, _)| id.to_owned()).collect();
    let _ = engine.snapshot();
    let mut out = Vec::new();
    for (n, account) in accounts.iter().take(8).enumerate() {
        let _ = engine.explain(account);
        // The account id as a JSON string, whatever it holds.
        let id = serde_json::Value::from(account.as_str()).to_string();
        for (i, kind) in TYPES.iter().enumerate() {
            let line = format!(
                r#"{{"event_id":"fuzz-{n}-{i}","type":"{kind}","account_id":{id},"timestamp":"2026-03-01T0{i}:00:00Z","properties":{{"seats_used":9,"seat_limit":10,"calls":5,"limit":10}}}}"#
            );
            engine.process(line.as_bytes(), None, &mut out);
        }
        let _ = engine.explain(account);
    }
    engine.evict_idle();
    let _ = engine.changed_account_records();
    let _ = engine.take_changes();
});
