//! What the traced function must see of a call, from the agent's own
//! record of it and the kernel's documented rules, never from the tracer:
//! whether the call reaches the function at all, whether the function can
//! read a name, and which bytes of it the tracer's buffer holds. Pure;
//! shared by the normalised trace and the field checks.

use unlink_schema::{escape_bytes, unescape_bytes, Step, FILENAME_BUF, PATH_MAX};

/// Whether the call reaches the unlink function: `unlinkat` with
/// `AT_REMOVEDIR` takes the rmdir path, and any other flag is refused with
/// EINVAL before either.
pub fn reaches_unlink(s: &Step) -> bool {
    s.flags == 0
}

/// Whether the function runs without a readable name: `getname()` refused
/// the path (a bad pointer, an empty path, PATH_MAX bytes or more) and the
/// function was handed its error pointer.
pub fn unreadable(s: &Step) -> bool {
    s.bad_pointer || s.path_len == 0 || s.path_len >= PATH_MAX
}

/// Whether the tracer must flag the name as truncated: a readable path
/// that does not fit its buffer with its NUL.
pub fn truncated(s: &Step) -> bool {
    !unreadable(s) && s.path_len >= FILENAME_BUF
}

/// The `filename` the tracer must report, escaped: the path, its first
/// `FILENAME_BUF - 1` bytes when truncated (a cut UTF-8 character then
/// shows as `\xNN`), or nothing when unreadable.
pub fn filename(s: &Step) -> String {
    if unreadable(s) {
        return String::new();
    }
    if !truncated(s) {
        return s.path.clone();
    }
    match unescape_bytes(&s.path) {
        Some(bytes) => escape_bytes(&bytes[..bytes.len().min(FILENAME_BUF - 1)]),
        // Not an escaped form: no event can match it.
        None => format!("<unescapable path {}>", s.path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::fields::tests::step;

    #[test]
    fn names_the_function_sees() {
        let long = format!("{}{}", "d".repeat(510), "\u{e9}\u{e9}");
        let cut = format!("{}\\xc3", "d".repeat(510));
        let cases: [(Step, bool, bool, &str); 7] = [
            (step("a", 0, 0), false, false, "a"),
            (step("", -2, 0), true, false, ""),
            (
                step(&"p".repeat(4095), -2, 0),
                false,
                true,
                &"p".repeat(511),
            ),
            (step(&"p".repeat(4096), -36, 0), true, false, ""),
            (step(&"b".repeat(511), 0, 0), false, false, &"b".repeat(511)),
            (step(&"b".repeat(512), 0, 0), false, true, &"b".repeat(511)),
            (
                Step {
                    path_len: 514,
                    ..step(&long, 0, 0)
                },
                false,
                true,
                &cut,
            ),
        ];
        for (s, unread, trunc, name) in cases {
            assert_eq!(
                (unreadable(&s), truncated(&s), filename(&s).as_str()),
                (unread, trunc, name),
                "{}",
                s.path_len
            );
        }
        let bad = Step {
            bad_pointer: true,
            ..step("", -14, 0)
        };
        assert!(unreadable(&bad));
        let rmdir = Step {
            flags: 0x200,
            ..step("d", 0, 0)
        };
        assert!(!reaches_unlink(&rmdir) && reaches_unlink(&step("d", 0, 0)));
    }
}
