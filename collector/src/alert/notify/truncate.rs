//! Cutting text to a platform's limits: at a character boundary, with a visible marker,
//! and counted.
//!
//! Limits come in three units: characters (Discord, Slack, Teams), UTF-16 code units
//! (Telegram counts those) and bytes (ntfy). A cut text ends with [`MARKER`] and fits the
//! limit marker included. A [`Truncator`] is made per rendering; it logs each cut at
//! debug level (field and limit) and counts them, and the count travels back to the
//! outbox in [`super::Delivered`], which exports it as a metric.

/// What ends a text that was cut: one character, three bytes in UTF-8, one UTF-16 unit.
pub const MARKER: char = '…';

/// Cuts texts to limits and counts the cuts of one rendering.
#[derive(Debug, Default)]
pub struct Truncator {
    cuts: u32,
}

impl Truncator {
    /// A truncator with no cut yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// `text` in at most `limit` characters (Unicode scalar values).
    pub fn chars(&mut self, text: &str, limit: usize, field: &'static str) -> String {
        self.cut(text, limit, field, |_| 1)
    }

    /// `text` in at most `limit` UTF-16 code units (Telegram's unit).
    pub fn utf16(&mut self, text: &str, limit: usize, field: &'static str) -> String {
        self.cut(text, limit, field, char::len_utf16)
    }

    /// `text` in at most `limit` bytes of UTF-8 (ntfy's unit).
    pub fn bytes(&mut self, text: &str, limit: usize, field: &'static str) -> String {
        self.cut(text, limit, field, char::len_utf8)
    }

    /// Records that `left_out` items (alerts, embeds) did not fit under `field`'s limit.
    pub fn left_out(&mut self, left_out: usize, field: &'static str) {
        if left_out > 0 {
            self.cuts += 1;
            tracing::debug!(
                field,
                left_out,
                "alerts left out of a notification to fit its platform's limits"
            );
        }
    }

    /// How many cuts were made.
    pub fn cuts(&self) -> u32 {
        self.cuts
    }

    fn cut(
        &mut self,
        text: &str,
        limit: usize,
        field: &'static str,
        size: impl Fn(char) -> usize,
    ) -> String {
        match cut_to(text, limit, size) {
            None => text.to_owned(),
            Some(cut) => {
                self.cuts += 1;
                tracing::debug!(
                    field,
                    limit,
                    "notification text cut to its platform's limit"
                );
                cut
            }
        }
    }
}

/// `text` cut so that its size plus the marker's is at most `limit`, or `None` when it
/// fits as it is. Sizes are summed per character, so a cut never splits one.
fn cut_to(text: &str, limit: usize, size: impl Fn(char) -> usize) -> Option<String> {
    let total: usize = text.chars().map(&size).sum();
    if total <= limit {
        return None;
    }
    let room = limit.saturating_sub(size(MARKER));
    let mut used = 0;
    let mut end = 0;
    for (at, c) in text.char_indices() {
        if used + size(c) > room {
            break;
        }
        used += size(c);
        end = at + c.len_utf8();
    }
    let mut cut = text[..end].trim_end().to_owned();
    if size(MARKER) <= limit {
        cut.push(MARKER);
    }
    Some(cut)
}

/// The size of `text` in UTF-16 code units.
pub fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_and_not_counted() {
        let mut t = Truncator::new();
        assert_eq!(t.chars("héllo", 5, "title"), "héllo");
        assert_eq!(t.bytes("abc", 3, "body"), "abc");
        assert_eq!(t.cuts(), 0);
    }

    #[test]
    fn cuts_at_char_boundaries_with_the_marker_inside_the_limit() {
        let mut t = Truncator::new();
        let text = "ééééé"; // 5 chars, 10 bytes
        let by_chars = t.chars(text, 3, "title");
        assert_eq!(by_chars, "éé…");
        assert_eq!(by_chars.chars().count(), 3);
        // 8 bytes: the marker takes 3, two é take 4, a third would split.
        let by_bytes = t.bytes(text, 8, "body");
        assert_eq!(by_bytes, "éé…");
        assert!(by_bytes.len() <= 8);
        // 🚨 is two UTF-16 units.
        let by_units = t.utf16("🚨🚨🚨", 4, "text");
        assert_eq!(by_units, "🚨…");
        assert!(utf16_len(&by_units) <= 4);
        assert_eq!(t.cuts(), 3);
    }

    #[test]
    fn trailing_space_before_the_marker_is_dropped() {
        let mut t = Truncator::new();
        assert_eq!(t.chars("one two three", 9, "f"), "one two…");
    }

    #[test]
    fn tiny_limits_never_exceed_themselves() {
        let mut t = Truncator::new();
        assert_eq!(t.bytes("hello", 2, "f"), "");
        assert_eq!(t.chars("hello", 1, "f"), "…");
        assert_eq!(t.chars("hello", 0, "f"), "");
    }

    #[test]
    fn left_out_items_count_as_a_cut() {
        let mut t = Truncator::new();
        t.left_out(0, "embeds");
        assert_eq!(t.cuts(), 0);
        t.left_out(3, "embeds");
        assert_eq!(t.cuts(), 1);
    }
}
