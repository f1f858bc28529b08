//! Deterministic, realistic gateway traffic for the codec's benchmark,
//! allocation test and fuzz targets (no external data).
//!
//! Shared by `#[path]` from `benches/codec.rs`, `tests/codec_allocations.rs`
//! and `fuzz/checks.rs`; it depends only on std and flate2.

#![allow(dead_code)]

use flate2::{Compress, Compression, FlushCompress};
use std::fmt::Write;

/// A small deterministic generator (SplitMix64).
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A Discord snowflake (as Discord sends them: a decimal string's contents).
    pub fn snowflake(&mut self) -> u64 {
        // 2015..2025 timestamps, worker/process/increment bits.
        let ms = 100_000_000_000 + self.below(320_000_000_000);
        (ms << 22) | self.below(1 << 22)
    }

    /// One of `items`.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    /// 32 hex digits, like an avatar or icon hash.
    pub fn hash(&mut self) -> String {
        format!("{:016x}{:016x}", self.next_u64(), self.next_u64())
    }

    /// An ISO 8601 timestamp as Discord writes them.
    pub fn timestamp(&mut self) -> String {
        format!(
            "20{:02}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}+00:00",
            16 + self.below(9),
            1 + self.below(12),
            1 + self.below(28),
            self.below(24),
            self.below(60),
            self.below(60),
            self.below(1000) * 1000
        )
    }
}

/// Reads fuzz bytes as instructions for replaying known traffic: control
/// bytes, split points, corruption offsets. Past the end it reads zeros.
pub struct Plan<'a> {
    bytes: &'a [u8],
    /// The unit of a large piece (`piece_len`), in bytes.
    large_unit: usize,
}

impl<'a> Plan<'a> {
    /// A plan over `bytes`, large pieces in multiples of `large_unit`.
    pub fn new(bytes: &'a [u8], large_unit: usize) -> Plan<'a> {
        Plan { bytes, large_unit }
    }

    /// The next byte, or 0 when the input is used up.
    pub fn next(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&first, rest)) => {
                self.bytes = rest;
                first
            }
            None => 0,
        }
    }

    /// The next WebSocket message length: mostly tiny (so markers and
    /// headers straddle messages), sometimes large.
    pub fn piece_len(&mut self) -> usize {
        match self.next() {
            byte @ 0..=127 => usize::from(byte % 8) + 1,
            byte => usize::from(byte - 127) * self.large_unit,
        }
    }
}

const WORDS: &[&str] = &[
    "the",
    "gateway",
    "shard",
    "resume",
    "hello",
    "is",
    "a",
    "message",
    "with",
    "some",
    "words",
    "and",
    "emoji",
    "lol",
    "ok",
    "what",
    "time",
    "raid",
    "tonight",
    "at",
    "nine",
    "🎉",
    "café",
    "naïve",
    "日本語",
    "check",
    "this",
    "link",
    "https://example.com/a?b=c",
    "@everyone",
    "<@123456789012345678>",
    "👍",
];

const NAMES: &[&str] = &[
    "alice",
    "bob",
    "carol",
    "dave",
    "eve",
    "mallory",
    "trent",
    "peggy",
    "victor",
    "walter",
    "zoë",
    "ünïcödé",
    "night_owl",
    "xX_gamer_Xx",
    "bot-helper",
    "mod.team",
];

/// Free text like a chat message, with the escapes Discord sends (`\n`, `\"`, `\\`).
fn content(rng: &mut Rng, words: u64) -> String {
    let mut text = String::new();
    for n in 0..words {
        if n > 0 {
            text.push_str(match rng.below(20) {
                0 => "\\n",
                1 => ", ",
                _ => " ",
            });
        }
        text.push_str(rng.pick(WORDS));
        if rng.chance(3) {
            text.push_str(if rng.chance(50) { "\\\"" } else { "\\\\" });
        }
    }
    text
}

fn user(rng: &mut Rng, out: &mut String) {
    let name = rng.pick(NAMES);
    let id = rng.snowflake();
    let avatar = if rng.chance(80) { format!("\"{}\"", rng.hash()) } else { "null".to_owned() };
    let _ = write!(
        out,
        r#"{{"username":"{name}{}","public_flags":{},"id":"{id}","global_name":{},"discriminator":"0","clan":null,"avatar_decoration_data":null,"avatar":{avatar}{}}}"#,
        rng.below(1000),
        [0, 64, 128, 256, 4194304][rng.below(5) as usize],
        if rng.chance(70) { format!("\"{} {}\"", rng.pick(NAMES), rng.pick(NAMES)) } else { "null".to_owned() },
        if rng.chance(5) { r#","bot":true"# } else { "" },
    );
}

fn member(rng: &mut Rng, out: &mut String, with_user: bool) {
    out.push_str(r#"{"roles":["#);
    for n in 0..rng.below(4) {
        if n > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{}\"", rng.snowflake());
    }
    let joined = rng.timestamp();
    let _ = write!(
        out,
        r#"],"premium_since":{},"pending":false,"nick":{},"mute":false,"joined_at":"{joined}","flags":{},"deaf":false,"communication_disabled_until":null,"banner":null,"avatar":null"#,
        if rng.chance(10) { format!("\"{}\"", rng.timestamp()) } else { "null".to_owned() },
        if rng.chance(20) { format!("\"{}\"", rng.pick(NAMES)) } else { "null".to_owned() },
        rng.below(3),
    );
    if with_user {
        out.push_str(r#","user":"#);
        user(rng, out);
    }
    out.push('}');
}

fn embed(rng: &mut Rng, out: &mut String) {
    let _ = write!(
        out,
        r#"{{"type":"rich","title":"{}","description":"{}","color":{},"fields":[{{"name":"{}","value":"{}","inline":true}},{{"name":"Score","value":"{}","inline":false}}],"footer":{{"text":"{}"}},"timestamp":"{}"}}"#,
        content(rng, 3),
        content(rng, 12),
        rng.below(0xFF_FFFF),
        rng.pick(WORDS),
        content(rng, 4),
        rng.below(100_000),
        content(rng, 2),
        rng.timestamp(),
    );
}

/// One MESSAGE_CREATE payload (about 0.5-2 KB) with sequence number `seq`.
pub fn message_create(rng: &mut Rng, seq: u64) -> String {
    let mut d = String::with_capacity(2048);
    let _ = write!(
        d,
        r#"{{"type":0,"tts":false,"timestamp":"{}","referenced_message":null,"pinned":false,"nonce":"{}","mentions":["#,
        rng.timestamp(),
        rng.snowflake()
    );
    for n in 0..rng.below(3) {
        if n > 0 {
            d.push(',');
        }
        user(rng, &mut d);
    }
    d.push_str(r#"],"mention_roles":[],"mention_everyone":false,"member":"#);
    member(rng, &mut d, false);
    let _ = write!(d, r#","id":"{}","flags":0,"embeds":["#, rng.snowflake());
    if rng.chance(25) {
        embed(rng, &mut d);
    }
    let words = 2 + rng.below(40);
    let _ = write!(
        d,
        r#"],"edited_timestamp":null,"content":"{}","components":[],"channel_type":0,"channel_id":"{}","author":"#,
        content(rng, words),
        rng.snowflake()
    );
    user(rng, &mut d);
    let _ = write!(d, r#","attachments":[],"guild_id":"{}"}}"#, rng.snowflake());
    format!(r#"{{"t":"MESSAGE_CREATE","s":{seq},"op":0,"d":{d}}}"#)
}

/// One small non-message event: TYPING_START or PRESENCE_UPDATE.
pub fn small_event(rng: &mut Rng, seq: u64) -> String {
    let mut d = String::with_capacity(1024);
    if rng.chance(50) {
        let _ = write!(
            d,
            r#"{{"user_id":"{}","timestamp":{},"member":"#,
            rng.snowflake(),
            1_700_000_000 + rng.below(1 << 24)
        );
        member(rng, &mut d, true);
        let _ = write!(d, r#","channel_id":"{}","guild_id":"{}"}}"#, rng.snowflake(), rng.snowflake());
        format!(r#"{{"t":"TYPING_START","s":{seq},"op":0,"d":{d}}}"#)
    } else {
        let _ = write!(
            d,
            r#"{{"user":{{"id":"{}"}},"status":"{}","guild_id":"{}","client_status":{{"desktop":"online"}},"activities":[{{"type":0,"name":"{}","id":"{}","created_at":{}}}]}}"#,
            rng.snowflake(),
            rng.pick(&["online", "idle", "dnd"]),
            rng.snowflake(),
            content(rng, 2),
            rng.hash(),
            1_700_000_000_000 + rng.below(1 << 30),
        );
        format!(r#"{{"t":"PRESENCE_UPDATE","s":{seq},"op":0,"d":{d}}}"#)
    }
}

/// One GUILD_CREATE payload of about `target_len` bytes: roles, channels,
/// members with users, presences, emojis.
pub fn guild_create(rng: &mut Rng, seq: u64, target_len: usize) -> String {
    let guild_id = rng.snowflake();
    let mut d = String::with_capacity(target_len + 4096);
    let _ = write!(
        d,
        r#"{{"id":"{guild_id}","name":"{} {}","icon":"{}","description":null,"features":["COMMUNITY","NEWS","ANIMATED_ICON","INVITE_SPLASH"],"member_count":{},"large":true,"unavailable":false,"joined_at":"{}","premium_tier":2,"verification_level":1,"system_channel_flags":0,"roles":["#,
        rng.pick(NAMES),
        rng.pick(WORDS),
        rng.hash(),
        rng.below(100_000),
        rng.timestamp()
    );
    for n in 0..40 {
        if n > 0 {
            d.push(',');
        }
        let _ = write!(
            d,
            r#"{{"version":{},"unicode_emoji":null,"tags":{{}},"position":{n},"permissions":"{}","name":"{}","mentionable":false,"managed":false,"id":"{}","icon":null,"hoist":{},"flags":0,"color":{}}}"#,
            1_700_000_000_000 + rng.below(1 << 30),
            rng.next_u64() >> 12,
            content(rng, 2),
            rng.snowflake(),
            rng.chance(30),
            rng.below(0xFF_FFFF)
        );
    }
    d.push_str(r#"],"channels":["#);
    for n in 0..60 {
        if n > 0 {
            d.push(',');
        }
        let _ = write!(
            d,
            r#"{{"version":{},"type":{},"topic":{},"rate_limit_per_user":0,"position":{n},"permission_overwrites":[{{"type":0,"id":"{}","deny":"0","allow":"1024"}}],"parent_id":"{}","nsfw":false,"name":"{}","last_message_id":"{}","id":"{}","flags":0}}"#,
            1_700_000_000_000 + rng.below(1 << 30),
            [0, 2, 4, 5][rng.below(4) as usize],
            if rng.chance(50) { format!("\"{}\"", content(rng, 10)) } else { "null".to_owned() },
            rng.snowflake(),
            rng.snowflake(),
            rng.pick(NAMES),
            rng.snowflake(),
            rng.snowflake()
        );
    }
    d.push_str(r#"],"emojis":["#);
    for n in 0..30 {
        if n > 0 {
            d.push(',');
        }
        let _ = write!(
            d,
            r#"{{"roles":[],"require_colons":true,"name":"{}","managed":false,"id":"{}","available":true,"animated":{}}}"#,
            rng.pick(NAMES),
            rng.snowflake(),
            rng.chance(20)
        );
    }
    d.push_str(r#"],"members":["#);
    let mut presences = String::from(r#"],"presences":["#);
    let mut first = true;
    while d.len() + presences.len() < target_len {
        if !first {
            d.push(',');
            presences.push(',');
        }
        first = false;
        member(rng, &mut d, true);
        let _ = write!(
            presences,
            r#"{{"user":{{"id":"{}"}},"status":"{}","client_status":{{"{}":"online"}},"broadcast":null,"activities":[]}}"#,
            rng.snowflake(),
            rng.pick(&["online", "idle", "dnd"]),
            rng.pick(&["desktop", "mobile", "web"])
        );
    }
    d.push_str(&presences);
    d.push_str(r#"],"threads":[],"voice_states":[],"stickers":[],"stage_instances":[],"guild_scheduled_events":[]}"#);
    format!(r#"{{"t":"GUILD_CREATE","s":{seq},"op":0,"d":{d}}}"#)
}

/// The mix a bot sees after connecting: Hello, READY, a burst of
/// `guilds` GUILD_CREATEs of 100 KB-1.5 MB, then `events` small events
/// (mostly MESSAGE_CREATE) and a heartbeat ACK every 100 events.
pub fn gateway_mix(seed: u64, guilds: usize, events: usize) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let mut payloads = vec![
        r#"{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":41250,"_trace":["[\"gateway-prd-us-east1-b-0568\",{\"micros\":0.0}]"]}}"#.to_owned(),
        format!(
            r#"{{"t":"READY","s":1,"op":0,"d":{{"v":10,"user":{{"id":"{}","username":"bot","bot":true}},"session_type":"normal","session_id":"{}","resume_gateway_url":"wss://gateway-us-east1-b.discord.gg","guilds":[{{"id":"{}","unavailable":true}}],"application":{{"id":"{}","flags":0}}}}}}"#,
            rng.snowflake(),
            rng.hash(),
            rng.snowflake(),
            rng.snowflake()
        ),
    ];
    let mut seq = 2;
    for n in 0..guilds {
        // Sizes spread evenly over 100 KB..1.5 MB.
        let size = 100_000 + n * 1_400_000 / guilds.saturating_sub(1).max(1);
        payloads.push(guild_create(&mut rng, seq, size));
        seq += 1;
    }
    for n in 0..events {
        if n % 100 == 99 {
            payloads.push(r#"{"t":null,"s":null,"op":11,"d":null}"#.to_owned());
        } else if rng.chance(70) {
            payloads.push(message_create(&mut rng, seq));
            seq += 1;
        } else {
            payloads.push(small_event(&mut rng, seq));
            seq += 1;
        }
    }
    payloads
}

/// Compresses `payloads` as one zlib stream with a sync flush after each,
/// as Discord does (`docs/compression.md#zlib-stream`): one compressed frame per payload,
/// each ending in `00 00 ff ff`.
pub fn zlib_stream<T: AsRef<[u8]>>(payloads: &[T]) -> Vec<Vec<u8>> {
    let mut compress = Compress::new(Compression::default(), true);
    payloads
        .iter()
        .map(|payload| {
            let mut input = payload.as_ref();
            let mut out = Vec::with_capacity(input.len() / 2 + 64);
            loop {
                let before = compress.total_in();
                compress.compress_vec(input, &mut out, FlushCompress::Sync).expect("compress");
                let consumed = (compress.total_in() - before) as usize;
                input = &input[consumed..];
                if input.is_empty() && out.len() < out.capacity() {
                    break;
                }
                out.reserve(out.capacity().max(64));
            }
            out
        })
        .collect()
}
