//! Which shard a connection is: the id every layer names.

use std::fmt;

/// A shard: its id and the total number of shards (`docs/sharding.md#shard-formula`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ShardId {
    /// Zero-based id of this shard, `< total`.
    pub id: u32,
    /// Total number of shards the bot runs.
    pub total: u32,
}

impl ShardId {
    /// The only shard of an unsharded bot, `[0, 1]`.
    pub const ONE: ShardId = ShardId { id: 0, total: 1 };

    /// Shard `id` of `total`; `None` when `total` is 0 or `id >= total` (Discord closes with 4010).
    pub fn new(id: u32, total: u32) -> Option<ShardId> {
        (id < total).then_some(ShardId { id, total })
    }

    /// The shard that receives a guild's events: `(guild_id >> 22) % total`
    /// (`docs/sharding.md#shard-formula`).
    pub fn for_guild(guild_id: u64, total: u32) -> Option<ShardId> {
        let total_u64 = u64::from(total);
        let id = (guild_id >> 22).checked_rem(total_u64)?;
        ShardId::new(u32::try_from(id).ok()?, total)
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {}]", self.id, self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_for_guild_follows_the_routing_formula() {
        // docs/sharding.md#shard-formula: shard_id = (guild_id >> 22) % num_shards
        let guild = 197_038_439_483_310_086_u64;
        assert_eq!(ShardId::for_guild(guild, 16), ShardId::new(((guild >> 22) % 16) as u32, 16));
        assert_eq!(ShardId::for_guild(guild, 0), None);
        assert_eq!(ShardId::new(3, 3), None);
    }
}
