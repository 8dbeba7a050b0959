//! Where a line's own text starts after the prefix its stream puts on every record: times in
//! any shape, level words, `[thread]` groups, pids, host and program names, logger names.
//!
//! A stack trace's header is often not at the start of its line
//! (`2026-11-27 13:05:02,430 ERROR Traceback (most recent call last):`), and a syslog daemon's
//! file repeats `Nov 27 13:05:02 web-1 shop[4242]: ` before every line of a trace. Rather than a
//! list of formats, each stream learns its prefix from its own ordinary lines: a line is cut into
//! tokens and each token reduced to its *shape* (a time or pid by where its digits are, a word by
//! its value, a level word or a bracketed group by its kind); the prefix is the run of token
//! shapes that most of the stream's recent lines share. It ends on a plain word only where the
//! lines go on differently after it (`web-1 shop …` then `GET …` or `panic: …`), so a message
//! that repeats word for word is never mistaken for one. Before enough lines agree, a line's
//! prefix is what it shares with one recent line up to where the two differ.
//!
//! After that, and for lines that do not repeat the stream's prefix, a structural rule
//! applies: leading times (with month and weekday names), numbers, level words, bracketed
//! groups, `name:`, `name -` and qualified logger names are a prefix by their shape alone.
//!
//! A body is only read to find a trace's header and to take a trace's own prefix off its
//! continuation lines: an ordinary line is never changed by it.

use crate::fingerprint::template::hash_bytes;

/// Tokens of a line looked at: prefixes longer than this are not recognised.
const MAX_TOKENS: usize = 12;
/// Bytes of a line looked at for its prefix (a syslog daemon's time, host and program, an
/// application's time, level, thread and logger fit with room to spare).
pub(super) const MAX_PREFIX_BYTES: usize = 160;
/// Bytes of a token's digit skeleton that tell shapes apart.
const MAX_SKELETON: usize = 64;
/// Recent ordinary lines the prefix is learned from, and how many of them must agree.
const RING: usize = 4;
const AGREE: usize = 3;
/// Every ordinary line teaches until this many have; then one in `SAMPLE_EVERY`, which keeps
/// the learning off the hot path of a busy stream and still follows a change of format.
const EAGER_LINES: u32 = 64;
const SAMPLE_EVERY: u32 = 256;

/// A token's shape: a kind in the top three bits, a hash of what identifies it in the rest.
type Shape = u32;

const KIND_SHIFT: u32 = 29;
const HASH_MASK: u32 = (1 << KIND_SHIFT) - 1;
/// A token with digits (a time, a date, a pid, `shop[4242]:`), known by where its digits are.
const VARIABLE: u32 = 1;
/// A level word (`ERROR`, `[warn]`, `INFO:`).
const LEVEL: u32 = 2;
/// A bracketed group (`[worker-3]`, `(main)`, `<13>`), whatever is inside.
const GROUP: u32 = 3;
/// Punctuation between fields: `-`, `---`, `|`, `:`, `>>`.
const SEPARATOR: u32 = 4;
/// A word ending in a colon (`shop:`) or a qualified name (`com.shop.Cart`): a program's or
/// logger's name, whatever the name.
const TAG: u32 = 5;
/// Any other word, known by its value.
const WORD: u32 = 6;

fn kind(shape: Shape) -> u32 {
    shape >> KIND_SHIFT
}

/// One token: its shape and where it ends in the line.
#[derive(Clone, Copy)]
struct Token {
    shape: Shape,
    end: usize,
}

/// The first tokens of a line (none if it starts with white space: a continuation).
struct Tokens {
    tokens: [Token; MAX_TOKENS],
    len: usize,
}

impl Tokens {
    fn of(line: &[u8], wanted: usize) -> Self {
        let mut out = Tokens {
            tokens: [Token { shape: 0, end: 0 }; MAX_TOKENS],
            len: 0,
        };
        let line = &line[..line.len().min(MAX_PREFIX_BYTES)];
        if line.first().is_none_or(|b| b.is_ascii_whitespace()) {
            return out;
        }
        let mut at = 0;
        while out.len < wanted.min(MAX_TOKENS) {
            while at < line.len() && matches!(line[at], b' ' | b'\t') {
                at += 1;
            }
            if at >= line.len() {
                break;
            }
            let end = token_end(line, at);
            out.tokens[out.len] = Token {
                shape: shape_of(&line[at..end]),
                end,
            };
            out.len += 1;
            at = end;
        }
        out
    }

    fn shapes(&self) -> impl Iterator<Item = Shape> + '_ {
        self.tokens[..self.len].iter().map(|token| token.shape)
    }
}

/// Where the token starting at `start` ends: a bracketed group runs to its closing bracket
/// (a thread name may hold spaces), anything else to the next blank.
fn token_end(line: &[u8], start: usize) -> usize {
    let close = match line[start] {
        b'[' => Some(b']'),
        b'(' => Some(b')'),
        b'<' => Some(b'>'),
        b'{' => Some(b'}'),
        _ => None,
    };
    if let Some(close) = close
        && let Some(offset) = memchr::memchr(close, &line[start + 1..])
    {
        let mut end = start + 1 + offset + 1;
        // `[main]:` or `(pid 7),`: the punctuation belongs to the group.
        while end < line.len() && matches!(line[end], b':' | b',') {
            end += 1;
        }
        if end >= line.len() || matches!(line[end], b' ' | b'\t') {
            return end;
        }
    }
    memchr::memchr2(b' ', b'\t', &line[start..]).map_or(line.len(), |offset| start + offset)
}

fn shape_of(token: &[u8]) -> Shape {
    let first = token[0];
    if matches!(first, b'[' | b'(' | b'<' | b'{') {
        let inner = token
            .iter()
            .rposition(|b| matches!(b, b']' | b')' | b'>' | b'}'))
            .map_or(&token[1..], |close| &token[1..close]);
        if is_level(inner) {
            return LEVEL << KIND_SHIFT;
        }
        if token.len() > 1
            && matches!(
                token[token.len() - 1],
                b']' | b')' | b'>' | b'}' | b':' | b','
            )
        {
            return GROUP << KIND_SHIFT;
        }
    }
    // `ERROR`, `INFO:`; but a lower-case `panic:` or `error:` opens a message (Go's panic).
    let colon = token.ends_with(b":");
    if is_level(token.strip_suffix(b":").unwrap_or(token)) {
        if !(colon && token[0].is_ascii_lowercase()) {
            return LEVEL << KIND_SHIFT;
        }
        return word(token);
    }
    if is_calendar_word(token) {
        // `Nov 27 13:05:02`, `Thu Nov 27 …`: part of a time, whichever month or day.
        return (VARIABLE << KIND_SHIFT) | 1;
    }
    if token.iter().any(u8::is_ascii_digit) {
        // Where the digits are, not which: `13:05:02,430` and `13:05:03,112` are one shape.
        let mut skeleton = [0u8; MAX_SKELETON];
        let mut len = 0;
        let mut in_digits = false;
        for byte in token {
            let digit = byte.is_ascii_digit();
            if !(digit && in_digits) && len < MAX_SKELETON {
                skeleton[len] = if digit { b'0' } else { *byte };
                len += 1;
            }
            in_digits = digit;
        }
        return (VARIABLE << KIND_SHIFT) | (hash_bytes(&skeleton[..len]) as u32 & HASH_MASK);
    }
    // `-`, `---`, `|`, `:`, `>>`, `==>`: punctuation between a prefix's fields.
    if token.len() <= 4 && token.iter().all(|b| b"-|:>=~*".contains(b)) {
        return SEPARATOR << KIND_SHIFT;
    }
    if token.len() > 1 && token.ends_with(b":") && !token.contains(&b'"')
        || is_qualified_name(token)
    {
        return TAG << KIND_SHIFT;
    }
    word(token)
}

/// Any other word, by its value.
fn word(token: &[u8]) -> Shape {
    (WORD << KIND_SHIFT) | (hash_bytes(token) as u32 & HASH_MASK)
}

/// A logger's qualified name (`com.shop.Cart`, `app.db.pool`): words joined by dots.
fn is_qualified_name(token: &[u8]) -> bool {
    token.contains(&b'.')
        && token.first().is_some_and(u8::is_ascii_alphabetic)
        && token.last().is_some_and(u8::is_ascii_alphanumeric)
        && !token.contains(&b'/')
        && token.windows(2).all(|pair| pair != b"..")
        && token
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'$'))
}

/// A month's or weekday's English abbreviation (`Nov`, `Thu,`), as times are written.
fn is_calendar_word(token: &[u8]) -> bool {
    const NAMES: [&[u8; 3]; 19] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec", b"mon", b"tue", b"wed", b"thu", b"fri", b"sat", b"sun",
    ];
    let word = token.strip_suffix(b",").unwrap_or(token);
    word.len() == 3
        && word[0].is_ascii_uppercase()
        && NAMES
            .iter()
            .any(|name| word.eq_ignore_ascii_case(&name[..]))
}

fn is_level(word: &[u8]) -> bool {
    let word = word.strip_suffix(b",").unwrap_or(word);
    (3..=9).contains(&word.len())
        && word.iter().all(u8::is_ascii_alphabetic)
        && crate::event::Level::from_name(word).is_some()
}

/// The prefix of one stream, learned from its ordinary lines.
#[derive(Debug, Default)]
pub struct PrefixLearner {
    ring: [[Shape; MAX_TOKENS]; RING],
    ring_lens: [u8; RING],
    next: usize,
    lines: u32,
    learned: [Shape; MAX_TOKENS],
    learned_len: usize,
    /// The recent lines go on past the learned prefix with tokens that differ: their messages
    /// start there.
    learned_closed: bool,
}

impl PrefixLearner {
    /// Learns from an ordinary line (one that starts an entry of its own).
    pub fn learn(&mut self, line: &[u8]) {
        self.lines = self.lines.saturating_add(1);
        if self.lines > EAGER_LINES && !self.lines.is_multiple_of(SAMPLE_EVERY) {
            return;
        }
        let tokens = Tokens::of(line, MAX_TOKENS);
        if tokens.len == 0 {
            return;
        }
        let slot = self.next;
        self.next = (self.next + 1) % RING;
        for (place, shape) in self.ring[slot].iter_mut().zip(tokens.shapes()) {
            *place = shape;
        }
        self.ring_lens[slot] = tokens.len as u8;
        self.relearn();
    }

    /// The longest run of token shapes that `AGREE` of the recent lines share.
    fn relearn(&mut self) {
        let mut alive = [false; RING];
        for (slot, alive) in alive.iter_mut().enumerate() {
            *alive = self.ring_lens[slot] > 0;
        }
        self.learned_len = 0;
        self.learned_closed = false;
        for position in 0..MAX_TOKENS {
            let at = |slot: usize| {
                (alive[slot] && usize::from(self.ring_lens[slot]) > position)
                    .then(|| self.ring[slot][position])
            };
            let majority = (0..RING)
                .filter_map(at)
                .find(|shape| (0..RING).filter(|slot| at(*slot) == Some(*shape)).count() >= AGREE);
            let Some(shape) = majority else {
                self.learned_closed = (0..RING).filter_map(at).count() >= AGREE;
                break;
            };
            for (slot, alive) in alive.iter_mut().enumerate() {
                *alive = *alive
                    && usize::from(self.ring_lens[slot]) > position
                    && self.ring[slot][position] == shape;
            }
            self.learned[position] = shape;
            self.learned_len = position + 1;
        }
    }

    /// Where `line`'s text starts: after the stream's learned prefix if the line carries it,
    /// else after a prefix recognised by its shape, else at 0. The prefix never takes the
    /// whole line, and ends on a plain word only where the line leaves the stream's prefix.
    pub fn body(&self, line: &[u8]) -> usize {
        // Most lines of a busy stream carry its learned prefix and their text right after it:
        // the tokens up to just past the prefix settle them, without reading further.
        let wanted = self.learned_len + 2;
        if self.learned_len > 0 && wanted < MAX_TOKENS {
            let tokens = Tokens::of(line, wanted);
            if tokens.len < wanted {
                return self.body_of(line, &tokens, true).unwrap_or(0);
            }
            if let Some(body) = self.body_of(line, &tokens, false) {
                return body;
            }
        }
        self.body_of(line, &Tokens::of(line, MAX_TOKENS), true)
            .unwrap_or(0)
    }

    /// [`body`](Self::body) from the first tokens of `line`; `complete` says whether they are
    /// all its tokens (up to `MAX_TOKENS`). `None`: more tokens are needed to tell.
    fn body_of(&self, line: &[u8], tokens: &Tokens, complete: bool) -> Option<usize> {
        if tokens.len < 2 {
            return Some(0);
        }
        let usable = tokens.len - 1;
        let mut matched = 0;
        while matched < self.learned_len.min(usable)
            && tokens.tokens[matched].shape == self.learned[matched]
        {
            matched += 1;
        }
        // Where the line leaves the shared prefix for a token of its own, its text starts;
        // a line that follows the recent lines to its end (a repeated message) keeps its words.
        let diverged = (matched < self.learned_len && matched < usable)
            || (matched == self.learned_len && self.learned_closed);
        if !diverged {
            while matched > 0 && kind(tokens.tokens[matched - 1].shape) == WORD {
                matched -= 1;
            }
        }
        // Before enough lines agree: the tokens this line shares with a recent line up to
        // where both go on differently (`app GET …`, then `app panic: …`).
        let start = if matched > 0 {
            matched
        } else if complete {
            self.shared_with_recent(tokens, usable)
        } else {
            return None;
        };
        let taken = structural(tokens, start);
        if !complete && taken >= usable {
            return None;
        }
        if taken == 0 {
            return Some(0);
        }
        Some(body_after(line, tokens.tokens[taken - 1].end))
    }

    /// The longest run of leading tokens `tokens` shares with one of the recent lines, where
    /// both lines go on past it with different tokens.
    fn shared_with_recent(&self, tokens: &Tokens, usable: usize) -> usize {
        (0..RING)
            .map(|slot| {
                let len = usize::from(self.ring_lens[slot]);
                let recent = &self.ring[slot][..len];
                let shared = tokens
                    .shapes()
                    .zip(recent)
                    .take_while(|(shape, other)| shape == *other)
                    .count();
                if shared < len && shared <= usable {
                    shared
                } else {
                    0
                }
            })
            .max()
            .unwrap_or(0)
    }
}

/// How many tokens are a prefix by shape alone, going on from `taken` (what the stream's
/// learned prefix covered): times, numbers, level words, groups, `name:` and `name -`.
fn structural(tokens: &Tokens, mut taken: usize) -> usize {
    let usable = tokens.len.saturating_sub(1);
    while taken < usable {
        let shape = tokens.tokens[taken].shape;
        match kind(shape) {
            VARIABLE | GROUP | SEPARATOR | LEVEL => taken += 1,
            // A logger's or program's `name:`, or `name -`: a body is only read for a trace's
            // header, so taking a message's `Note:` costs nothing.
            TAG => taken += 1,
            WORD if taken + 1 < usable && kind(tokens.tokens[taken + 1].shape) == SEPARATOR => {
                taken += 2;
            }
            _ => break,
        }
    }
    taken
}

/// Where the text starts after a prefix ending at `end`: one blank separates them, and the
/// rest (a trace line's own indentation) is the text's. 0 if nothing follows.
fn body_after(line: &[u8], end: usize) -> usize {
    let start = if matches!(line.get(end), Some(b' ' | b'\t')) {
        end + 1
    } else {
        end
    };
    if start >= line.len() { 0 } else { start }
}

/// The prefix a trace's first line carried, by shape: the trace's own lines may repeat it
/// (`[main] Traceback…`, `[main]   File…`) with other times and pids, and are read without it.
#[derive(Debug, Clone, Copy)]
pub struct LinePrefix {
    shapes: [Shape; MAX_TOKENS],
    len: usize,
}

impl LinePrefix {
    /// The shapes of `line`'s tokens before `body_start` (`None` if there are none).
    pub fn of(line: &[u8], body_start: usize) -> Option<LinePrefix> {
        let tokens = Tokens::of(line, MAX_TOKENS);
        let len = tokens.tokens[..tokens.len]
            .iter()
            .take_while(|token| token.end <= body_start)
            .count();
        let mut shapes = [0; MAX_TOKENS];
        for (place, shape) in shapes.iter_mut().zip(tokens.shapes().take(len)) {
            *place = shape;
        }
        (len > 0).then_some(LinePrefix { shapes, len })
    }

    /// Where `line`'s text starts if it begins with this prefix (the line's end if nothing
    /// follows it: a blank line of the trace).
    pub fn body(&self, line: &[u8]) -> Option<usize> {
        let tokens = Tokens::of(line, self.len);
        let same =
            tokens.len == self.len && tokens.shapes().eq(self.shapes[..self.len].iter().copied());
        if !same {
            return None;
        }
        let end = tokens.tokens[self.len - 1].end;
        // Nothing after the prefix: a blank line of the trace.
        Some(match body_after(line, end) {
            0 => line.len(),
            start => start,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_after<'a>(learner: &PrefixLearner, line: &'a str) -> &'a str {
        &line[learner.body(line.as_bytes())..]
    }

    fn taught(lines: &[&str]) -> PrefixLearner {
        let mut learner = PrefixLearner::default();
        for line in lines {
            learner.learn(line.as_bytes());
        }
        learner
    }

    #[test]
    fn a_prefix_of_times_levels_and_groups_is_known_by_its_shape() {
        let learner = PrefixLearner::default();
        for (line, text) in [
            (
                "2026-11-27 13:05:02,430 ERROR Traceback (most recent call last):",
                "Traceback (most recent call last):",
            ),
            (
                "2026-11-27T13:05:02.123Z ERROR thread 'worker-3' (20865) panicked at src/x.rs:1:2:",
                "thread 'worker-3' (20865) panicked at src/x.rs:1:2:",
            ),
            (
                "[2026-11-27 13:05:02] [pid 4242] [worker-3] panic: boom",
                "panic: boom",
            ),
            (
                "2026-11-27 13:05:02.430 ERROR [main] com.shop.Cart - checkout failed",
                "checkout failed",
            ),
            ("I1127 13:05:02.430 4242 main.go:12] started", "started"),
            (
                "2026-11-27T13:05:00.159Z ERROR panic: runtime error: index out of range",
                "panic: runtime error: index out of range",
            ),
            ("checkout failed for 3 items", "checkout failed for 3 items"),
            (
                "  File \"/app/x.py\", line 3, in f",
                "  File \"/app/x.py\", line 3, in f",
            ),
            ("2026-11-27", "2026-11-27"),
        ] {
            assert_eq!(text_after(&learner, line), text, "{line}");
        }
    }

    #[test]
    fn a_stream_teaches_its_host_and_program_names() {
        let learner = taught(&[
            "Nov 27 13:05:01 web-1 shop[4242]: starting",
            "Nov 27 13:05:01 web-1 shop[4242]: listening on 8080",
            "Nov 27 13:05:02 web-1 shop[4242]: connected to db",
            "Nov 27 13:05:02 web-1 shop[4243]: worker ready",
        ]);
        assert_eq!(
            text_after(
                &learner,
                "Nov 27 13:05:03 web-1 shop[4242]:   File \"/app/x.py\", line 3"
            ),
            "  File \"/app/x.py\", line 3"
        );
        assert_eq!(
            text_after(
                &learner,
                "Nov 27 13:05:03 web-1 shop[4242]: Traceback (most recent call last):"
            ),
            "Traceback (most recent call last):"
        );
        // Another program on the host: the host is learned, the rest known by its shape.
        assert_eq!(
            text_after(&learner, "Nov 27 13:05:03 web-1 cron[1]: panic: job"),
            "panic: job"
        );
    }

    #[test]
    fn a_repeated_message_is_not_taken_for_a_prefix() {
        let learner = taught(&[
            "12:00:01 heartbeat sent to peer",
            "12:00:02 heartbeat sent to peer",
            "12:00:03 heartbeat sent to peer",
            "12:00:04 heartbeat sent to peer",
        ]);
        assert_eq!(
            text_after(&learner, "12:00:05 heartbeat sent to peer"),
            "heartbeat sent to peer"
        );
        assert_eq!(
            text_after(&learner, "12:00:05 panic: lost peer"),
            "panic: lost peer"
        );
    }

    #[test]
    fn odd_lines_do_not_unteach_the_prefix() {
        let learner = taught(&[
            "2026-11-27 13:05:01 INFO  api: a",
            "2026-11-27 13:05:01 WARN  db: b",
            "some bare line",
            "2026-11-27 13:05:02 INFO  api: c",
        ]);
        assert_eq!(
            text_after(
                &learner,
                "2026-11-27 13:05:03 ERROR worker: Traceback (most recent call last):"
            ),
            "Traceback (most recent call last):"
        );
    }

    #[test]
    fn a_line_leaving_what_it_shares_with_a_recent_line_starts_its_text_there() {
        let learner = taught(&["app GET /api/cart/1 200 in 12 ms"]);
        assert_eq!(
            text_after(&learner, "app panic: runtime error: index out of range"),
            "panic: runtime error: index out of range"
        );
        let learner = taught(&["com.shop.Cart started"]);
        assert_eq!(
            text_after(&learner, "com.shop.Cart panic: boom"),
            "panic: boom"
        );
    }

    #[test]
    fn any_bytes_are_safe() {
        let learner = taught(&["\u{0}\u{1}[[[ ((( <<<", "[", "]] :: -- |"]);
        for line in [
            &b"["[..],
            b"[a",
            b"(x) ",
            b" ",
            b"",
            b"\xff\xfe 1 2",
            b"[] [] []",
        ] {
            assert!(learner.body(line) <= line.len());
        }
    }
}
