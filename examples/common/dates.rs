//! The data of `translate_attention`: dates in words and their ISO tokens (see that
//! example's comment). Source ids: `and`, `of`, the days, the months, the two centuries,
//! the 100 two-digit year ends; target ids: years 1950..=2049, months, days, `<end>`, and
//! `<go>` (only as the decoder's first input).

use recur::rng::Rng;

/// Dates a source holds, at most.
pub const MAX_DATES: usize = 3;
/// Days run 1..=DAYS (every month has them).
const DAYS: usize = 28;

#[rustfmt::skip]
const ORDINALS: [&str; 19] = [
    "first", "second", "third", "fourth", "fifth", "sixth",
    "seventh", "eighth", "ninth", "tenth", "eleventh", "twelfth",
    "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth",
    "nineteenth",
];
#[rustfmt::skip]
const MONTHS: [&str; 12] = [
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
];
#[rustfmt::skip]
const UNITS: [&str; 9] = [
    "one", "two", "three", "four", "five", "six",
    "seven", "eight", "nine",
];
#[rustfmt::skip]
const TEENS: [&str; 10] = [
    "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen",
    "sixteen", "seventeen", "eighteen", "nineteen",
];
#[rustfmt::skip]
const TENS: [&str; 8] = [
    "twenty", "thirty", "forty", "fifty", "sixty", "seventy",
    "eighty", "ninety",
];

/// Source ids: 0 `and`, 1 `of`, then days, months, the two centuries, the 100 two-digit
/// year ends.
const AND: u32 = 0;
const OF: u32 = 1;
const FIRST_DAY: u32 = 2;
const FIRST_MONTH: u32 = FIRST_DAY + DAYS as u32;
const FIRST_CENTURY: u32 = FIRST_MONTH + 12;
const FIRST_YY: u32 = FIRST_CENTURY + 2;
pub const SRC_VOCAB: usize = FIRST_YY as usize + 100;
/// Target ids: years 1950..=2049, months 01..=12, days 01..=DAYS, `<end>`; `<go>` only as
/// the decoder's first input.
const FIRST_MONTH_OUT: u32 = 100;
const FIRST_DAY_OUT: u32 = FIRST_MONTH_OUT + 12;
pub const END: u32 = FIRST_DAY_OUT + DAYS as u32;
pub const OUT_VOCAB: usize = END as usize + 1;
pub const GO: u32 = END + 1;

fn day_word(d: usize) -> String {
    match d {
        1..=19 => ORDINALS[d - 1].to_string(),
        20 => "twentieth".into(),
        _ => format!("twenty-{}", ORDINALS[d - 21]),
    }
}

fn yy_word(yy: usize) -> String {
    match yy {
        0 => "hundred".into(),
        1..=9 => format!("oh-{}", UNITS[yy - 1]),
        10..=19 => TEENS[yy - 10].into(),
        _ if yy.is_multiple_of(10) => TENS[yy / 10 - 2].into(),
        _ => format!("{}-{}", TENS[yy / 10 - 2], UNITS[yy % 10 - 1]),
    }
}

/// The word of source id `id`.
pub fn src_word(id: u32) -> String {
    match id {
        AND => "and".into(),
        OF => "of".into(),
        _ if id < FIRST_MONTH => day_word((id - FIRST_DAY) as usize + 1),
        _ if id < FIRST_CENTURY => MONTHS[(id - FIRST_MONTH) as usize].into(),
        _ if id < FIRST_YY => ["nineteen", "twenty"][(id - FIRST_CENTURY) as usize].into(),
        _ => yy_word((id - FIRST_YY) as usize),
    }
}

/// The text of target id `id`.
pub fn out_word(id: u32) -> String {
    match id {
        _ if id < FIRST_MONTH_OUT => format!("{}", 1950 + id),
        _ if id < FIRST_DAY_OUT => format!("{:02}", id - FIRST_MONTH_OUT + 1),
        _ if id < END => format!("{:02}", id - FIRST_DAY_OUT + 1),
        _ => "<end>".into(),
    }
}

/// Source length of `k` dates (five words each, "and" between).
pub fn src_len(k: usize) -> usize {
    6 * k - 1
}

/// Target length of `k` dates (three tokens each, then `<end>`).
pub fn tgt_len(k: usize) -> usize {
    3 * k + 1
}

/// `batch` sources of `k` dates, time-major `(S, B)`, the decoder's inputs (`<go>`, then
/// the targets shifted) and targets `(T, B)`.
pub fn task(rng: &mut Rng, k: usize, batch: usize) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let (s_len, t_len) = (src_len(k), tgt_len(k));
    let mut src = vec![AND; s_len * batch];
    let mut tgt = vec![END; t_len * batch];
    let mut dec_in = vec![GO; t_len * batch];
    let mut pick = |n: usize| (rng.next_u64() % n as u64) as usize;
    for b in 0..batch {
        for i in 0..k {
            // Years 1950..=2049: the century word follows from the last two digits.
            let (day, month, year) = (pick(DAYS), pick(12), 50 + pick(100));
            let words = [
                FIRST_DAY + day as u32,
                OF,
                FIRST_MONTH + month as u32,
                FIRST_CENTURY + (year / 100) as u32,
                FIRST_YY + (year % 100) as u32,
            ];
            for (j, w) in words.into_iter().enumerate() {
                src[(6 * i + j) * batch + b] = w;
            }
            let out = [
                (year - 50) as u32,
                FIRST_MONTH_OUT + month as u32,
                FIRST_DAY_OUT + day as u32,
            ];
            for (j, w) in out.into_iter().enumerate() {
                tgt[(3 * i + j) * batch + b] = w;
            }
        }
        for t in 1..t_len {
            dec_in[t * batch + b] = tgt[(t - 1) * batch + b];
        }
    }
    (src, dec_in, tgt)
}
