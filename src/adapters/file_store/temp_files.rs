//! The file store's temporary files: their name, and when one is a stale
//! leftover of a write that died (kill -9, power loss) and may be removed.
//! A write in progress lasts seconds; one hour is far beyond any of them,
//! so a temporary file older than that is never one still being written.

use std::time::{Duration, SystemTime};

/// Age beyond which a temporary file is certainly abandoned.
pub const STALE_AFTER: Duration = Duration::from_secs(60 * 60);

const PREFIX: &str = ".tmp-";

/// The name of the temporary file a write of content `sha256` goes
/// through: `.tmp-<sha256>-<16 hex digits>` (the nonce keeps two writers of
/// the same content apart).
pub fn temp_name(sha256: &str, nonce: u64) -> String {
    format!("{PREFIX}{sha256}-{nonce:016x}")
}

/// Whether `name` is exactly a name [`temp_name`] makes. Strict, so that
/// nothing else in the storage directory can ever be taken for one.
pub fn is_temp_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(PREFIX) else {
        return false;
    };
    let Some((sha, nonce)) = rest.split_once('-') else {
        return false;
    };
    let lower_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    sha.len() == 64 && nonce.len() == 16 && lower_hex(sha) && lower_hex(nonce)
}

/// A temporary file last modified more than [`STALE_AFTER`] before `now`.
/// A modification time in the future (a clock set back) is not stale.
pub fn is_stale_temp(name: &str, modified: SystemTime, now: SystemTime) -> bool {
    is_temp_name(name)
        && now
            .duration_since(modified)
            .is_ok_and(|age| age > STALE_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn temp_name_is_recognised() {
        for nonce in [0, 1, 0xdead_beef, u64::MAX] {
            let name = temp_name(SHA, nonce);
            assert!(is_temp_name(&name), "{name}");
        }
    }

    #[test]
    fn stale_temp_table() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ago = |secs: u64| now - Duration::from_secs(secs);
        let tmp = temp_name(SHA, 0x0123_4567_89ab_cdef);
        let upper_sha = format!(".tmp-{}-0123456789abcdef", SHA.to_ascii_uppercase());
        let short_nonce = format!(".tmp-{SHA}-0123");
        let no_nonce = format!(".tmp-{SHA}");
        let extra = format!("{tmp}.bak");
        let not_hex = format!(".tmp-{SHA}-0123456789abcdeg");
        let cases: &[(&str, &str, SystemTime, bool)] = &[
            ("two hours old", &tmp, ago(2 * 3600), true),
            ("one hour and a second", &tmp, ago(3601), true),
            ("exactly one hour: not yet", &tmp, ago(3600), false),
            ("ten minutes old", &tmp, ago(600), false),
            ("just written", &tmp, now, false),
            (
                "modified in the future",
                &tmp,
                now + Duration::from_secs(7200),
                false,
            ),
            ("a year old", &tmp, ago(365 * 86400), true),
            ("content file, old", SHA, ago(365 * 86400), false),
            ("upper-case hash", &upper_sha, ago(7200), false),
            ("short nonce", &short_nonce, ago(7200), false),
            ("no nonce", &no_nonce, ago(7200), false),
            ("suffix after the nonce", &extra, ago(7200), false),
            ("non-hex nonce", &not_hex, ago(7200), false),
            ("bare prefix", ".tmp-", ago(7200), false),
            ("other dot file", ".keep", ago(7200), false),
            ("other tmp file", "upload.tmp", ago(7200), false),
            ("empty name", "", ago(7200), false),
        ];
        for (what, name, modified, want) in cases {
            assert_eq!(
                is_stale_temp(name, *modified, now),
                *want,
                "{what}: name {name:?}, modified {modified:?}"
            );
        }
    }
}
