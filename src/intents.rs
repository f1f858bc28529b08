//! Gateway intents (`docs/intents.md#intent-bits`).

bitflags::bitflags! {
    /// The intents bitfield sent in Identify: which event groups the bot receives.
    ///
    /// Undocumented bits close the connection with 4013 and privileged intents
    /// that are not enabled in the Developer Portal close it with 4014, so
    /// [`Intents::from_bits`] refuses unknown bits.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
    #[serde(transparent)]
    pub struct Intents: u64 {
        /// Guild, role, channel, thread and stage events.
        const GUILDS = 1 << 0;
        /// Member add/update/remove. **Privileged.**
        const GUILD_MEMBERS = 1 << 1;
        /// Audit log entries and bans (was GUILD_BANS).
        const GUILD_MODERATION = 1 << 2;
        /// Emoji, sticker and soundboard updates (was GUILD_EMOJIS_AND_STICKERS).
        const GUILD_EXPRESSIONS = 1 << 3;
        /// Integration events.
        const GUILD_INTEGRATIONS = 1 << 4;
        /// WEBHOOKS_UPDATE.
        const GUILD_WEBHOOKS = 1 << 5;
        /// Invite create/delete.
        const GUILD_INVITES = 1 << 6;
        /// Voice state and voice channel effects.
        const GUILD_VOICE_STATES = 1 << 7;
        /// PRESENCE_UPDATE. **Privileged.**
        const GUILD_PRESENCES = 1 << 8;
        /// Guild message create/update/delete.
        const GUILD_MESSAGES = 1 << 9;
        /// Guild message reactions.
        const GUILD_MESSAGE_REACTIONS = 1 << 10;
        /// Guild TYPING_START.
        const GUILD_MESSAGE_TYPING = 1 << 11;
        /// Direct message create/update/delete.
        const DIRECT_MESSAGES = 1 << 12;
        /// Direct message reactions.
        const DIRECT_MESSAGE_REACTIONS = 1 << 13;
        /// Direct message TYPING_START.
        const DIRECT_MESSAGE_TYPING = 1 << 14;
        /// Unlocks message content fields; no events of its own. **Privileged.**
        const MESSAGE_CONTENT = 1 << 15;
        /// Guild scheduled events.
        const GUILD_SCHEDULED_EVENTS = 1 << 16;
        /// Auto-moderation rule changes.
        const AUTO_MODERATION_CONFIGURATION = 1 << 20;
        /// Auto-moderation action executions.
        const AUTO_MODERATION_EXECUTION = 1 << 21;
        /// Poll votes in guilds.
        const GUILD_MESSAGE_POLLS = 1 << 24;
        /// Poll votes in direct messages.
        const DIRECT_MESSAGE_POLLS = 1 << 25;
    }
}

impl Intents {
    /// The privileged intents, which must be enabled in the Developer Portal.
    pub const PRIVILEGED: Intents =
        Intents::GUILD_MEMBERS.union(Intents::GUILD_PRESENCES).union(Intents::MESSAGE_CONTENT);

    /// Every documented intent that is not privileged.
    pub fn non_privileged() -> Intents {
        Intents::all().difference(Intents::PRIVILEGED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_bit_totals_match_the_reference() {
        // docs/intents.md#intent-bits: all documented bits 53608447, non-privileged 53575421.
        assert_eq!(Intents::all().bits(), 53_608_447);
        assert_eq!(Intents::non_privileged().bits(), 53_575_421);
    }

    #[test]
    fn undocumented_bits_are_refused() {
        // Bits 17-19, 22, 23 are undocumented and would close with 4013.
        assert_eq!(Intents::from_bits(1 << 17), None);
        assert_eq!(Intents::from_bits(1 << 22), None);
    }
}
