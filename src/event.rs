//! Dispatch event names: the `t` of each opcode-0 payload Discord documents
//! (<https://discord.com/developers/docs/events/gateway-events#receive-events>).
//!
//! Plain `&str` constants, so they work wherever a name does: in
//! [`Config::events`](crate::Config::events), and as patterns matched
//! against [`Dispatch::event`](crate::Dispatch::event). A misspelt constant
//! does not compile; a misspelt string just never matches. Discord adds
//! events from time to time: a name missing here still arrives, and still
//! filters, as a string.
//!
//! Hello, Reconnect and Invalid Session are receive events too, but not
//! dispatches (op 10, 7 and 9): the connection handles them and they never
//! reach the stream, so they have no name here.
//!
//! ```
//! use discord_gateway_stream::{event, Config, Dispatch, Intents};
//!
//! let config = Config::new("token", Intents::GUILD_MESSAGES | Intents::MESSAGE_CONTENT)
//!     .events([event::MESSAGE_CREATE, event::MESSAGE_UPDATE]);
//! # let _ = config;
//!
//! fn handle(dispatch: &Dispatch) {
//!     match dispatch.event() {
//!         event::MESSAGE_CREATE => println!("new message: {}", dispatch.data()),
//!         event::MESSAGE_UPDATE => println!("edited: {}", dispatch.data()),
//!         _ => {}
//!     }
//! }
//! ```

macro_rules! event_names {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        $(
            $(#[$doc])*
            pub const $name: &str = stringify!($name);
        )*

        /// Every name in this module, in the order of Discord's table of receive events.
        pub const ALL: &[&str] = &[$($name),*];
    };
}

event_names! {
    /// The initial state of a new session: the answer to Identify.
    READY,
    /// A resume finished: every missed dispatch has been replayed.
    RESUMED,
    /// A gateway command (such as Request Guild Members) was rate limited.
    RATE_LIMITED,
    /// An application command's permissions were updated.
    APPLICATION_COMMAND_PERMISSIONS_UPDATE,
    /// An Auto Moderation rule was created.
    AUTO_MODERATION_RULE_CREATE,
    /// An Auto Moderation rule was updated.
    AUTO_MODERATION_RULE_UPDATE,
    /// An Auto Moderation rule was deleted.
    AUTO_MODERATION_RULE_DELETE,
    /// An Auto Moderation rule was triggered and an action was executed.
    AUTO_MODERATION_ACTION_EXECUTION,
    /// A guild channel was created.
    CHANNEL_CREATE,
    /// A channel was updated.
    CHANNEL_UPDATE,
    /// A channel was deleted.
    CHANNEL_DELETE,
    /// A message was pinned or unpinned.
    CHANNEL_PINS_UPDATE,
    /// A thread was created, or the bot was added to a private thread.
    THREAD_CREATE,
    /// A thread was updated.
    THREAD_UPDATE,
    /// A thread was deleted.
    THREAD_DELETE,
    /// The active threads of a channel the bot gained access to.
    THREAD_LIST_SYNC,
    /// The bot's thread member was updated.
    THREAD_MEMBER_UPDATE,
    /// Users were added to or removed from a thread.
    THREAD_MEMBERS_UPDATE,
    /// An entitlement was created.
    ENTITLEMENT_CREATE,
    /// An entitlement was updated or renewed.
    ENTITLEMENT_UPDATE,
    /// An entitlement was deleted.
    ENTITLEMENT_DELETE,
    /// A guild became available (lazy load, outage over) or the bot joined one.
    GUILD_CREATE,
    /// A guild was updated.
    GUILD_UPDATE,
    /// A guild became unavailable, or the bot left or was removed from it.
    GUILD_DELETE,
    /// A guild audit log entry was created.
    GUILD_AUDIT_LOG_ENTRY_CREATE,
    /// A user was banned from a guild.
    GUILD_BAN_ADD,
    /// A user was unbanned from a guild.
    GUILD_BAN_REMOVE,
    /// A guild's emojis were updated.
    GUILD_EMOJIS_UPDATE,
    /// A guild's stickers were updated.
    GUILD_STICKERS_UPDATE,
    /// A guild integration was updated.
    GUILD_INTEGRATIONS_UPDATE,
    /// A user joined a guild.
    GUILD_MEMBER_ADD,
    /// A user was removed from a guild.
    GUILD_MEMBER_REMOVE,
    /// A guild member was updated.
    GUILD_MEMBER_UPDATE,
    /// Members of a guild: the answer to Request Guild Members.
    GUILD_MEMBERS_CHUNK,
    /// A guild role was created.
    GUILD_ROLE_CREATE,
    /// A guild role was updated.
    GUILD_ROLE_UPDATE,
    /// A guild role was deleted.
    GUILD_ROLE_DELETE,
    /// A guild scheduled event was created.
    GUILD_SCHEDULED_EVENT_CREATE,
    /// A guild scheduled event was updated.
    GUILD_SCHEDULED_EVENT_UPDATE,
    /// A guild scheduled event was deleted.
    GUILD_SCHEDULED_EVENT_DELETE,
    /// A user subscribed to a guild scheduled event.
    GUILD_SCHEDULED_EVENT_USER_ADD,
    /// A user unsubscribed from a guild scheduled event.
    GUILD_SCHEDULED_EVENT_USER_REMOVE,
    /// A guild soundboard sound was created.
    GUILD_SOUNDBOARD_SOUND_CREATE,
    /// A guild soundboard sound was updated.
    GUILD_SOUNDBOARD_SOUND_UPDATE,
    /// A guild soundboard sound was deleted.
    GUILD_SOUNDBOARD_SOUND_DELETE,
    /// A guild's soundboard sounds were updated.
    GUILD_SOUNDBOARD_SOUNDS_UPDATE,
    /// A guild's soundboard sounds: the answer to Request Soundboard Sounds.
    SOUNDBOARD_SOUNDS,
    /// A guild integration was created.
    INTEGRATION_CREATE,
    /// A guild integration was updated.
    INTEGRATION_UPDATE,
    /// A guild integration was deleted.
    INTEGRATION_DELETE,
    /// A user used an interaction, such as an application command.
    INTERACTION_CREATE,
    /// An invite to a channel was created.
    INVITE_CREATE,
    /// An invite to a channel was deleted.
    INVITE_DELETE,
    /// A message was created.
    MESSAGE_CREATE,
    /// A message was edited.
    MESSAGE_UPDATE,
    /// A message was deleted.
    MESSAGE_DELETE,
    /// Several messages were deleted at once.
    MESSAGE_DELETE_BULK,
    /// A user reacted to a message.
    MESSAGE_REACTION_ADD,
    /// A user removed a reaction from a message.
    MESSAGE_REACTION_REMOVE,
    /// Every reaction was removed from a message.
    MESSAGE_REACTION_REMOVE_ALL,
    /// Every reaction with one emoji was removed from a message.
    MESSAGE_REACTION_REMOVE_EMOJI,
    /// A user's presence was updated.
    PRESENCE_UPDATE,
    /// A stage instance was created.
    STAGE_INSTANCE_CREATE,
    /// A stage instance was updated.
    STAGE_INSTANCE_UPDATE,
    /// A stage instance was deleted or closed.
    STAGE_INSTANCE_DELETE,
    /// A premium app subscription was created.
    SUBSCRIPTION_CREATE,
    /// A premium app subscription was updated.
    SUBSCRIPTION_UPDATE,
    /// A premium app subscription was deleted.
    SUBSCRIPTION_DELETE,
    /// A user started typing in a channel.
    TYPING_START,
    /// The bot user's properties changed.
    USER_UPDATE,
    /// Someone sent an effect in a voice channel the bot is connected to.
    VOICE_CHANNEL_EFFECT_SEND,
    /// Someone joined, left or moved a voice channel.
    VOICE_STATE_UPDATE,
    /// A guild's voice server was updated.
    VOICE_SERVER_UPDATE,
    /// A guild channel webhook was created, updated or deleted.
    WEBHOOKS_UPDATE,
    /// A user voted on a poll.
    MESSAGE_POLL_VOTE_ADD,
    /// A user removed a vote on a poll.
    MESSAGE_POLL_VOTE_REMOVE,
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_upper_snake_case() {
        let unique: HashSet<&str> = super::ALL.iter().copied().collect();
        assert_eq!(unique.len(), super::ALL.len());
        // The dispatches of Discord's table of receive events.
        assert_eq!(super::ALL.len(), 76);
        for name in super::ALL {
            assert!(name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'), "{name}");
        }
        assert_eq!(super::MESSAGE_CREATE, "MESSAGE_CREATE");
    }
}
