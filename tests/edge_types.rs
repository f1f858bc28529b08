//! Types at the edges (issue 13.6): the exact bytes of each command with
//! `u64` snowflakes (Discord's documented examples), event-name constants
//! with the event filter, and a `ShardGroup` built from a `GET /gateway/bot`
//! answer, all named from the crate root.
#![cfg(all(feature = "testing", feature = "async-std"))]

mod support;

use std::time::Duration;

use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
use discord_gateway_stream::{
    event, Activity, ActivityType, Command, Compression, Config, GatewayBot, IdentifyError, Intents, OnlineStatus,
    Presence, RequestGuildMembers, RequestSoundboardSounds, ShardError, ShardId, VoiceStateUpdate,
};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use support::client::fast_policy;

const WAIT: Duration = Duration::from_secs(20);

/// `command` sends exactly `frame`; the `d` of `frame`, pretty-printed as
/// in Discord's documentation, deserializes back into `command`.
fn sends_exactly<T>(command: &T, frame: &str)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
    for<'a> Command: TryFrom<&'a T, Error = discord_gateway_stream::CommandError>,
{
    assert_eq!(Command::try_from(command).unwrap().frame(), frame);
    let value: serde_json::Value = serde_json::from_str(frame).unwrap();
    let pretty = serde_json::to_string_pretty(&value["d"]).unwrap();
    assert_eq!(&serde_json::from_str::<T>(&pretty).unwrap(), command, "{pretty}");
}

#[test]
fn commands_send_discords_documented_examples_byte_for_byte() {
    sends_exactly(
        &RequestGuildMembers::query(41771983444115456, "", 0),
        r#"{"op":8,"d":{"guild_id":"41771983444115456","query":"","limit":0}}"#,
    );
    let mut by_id = RequestGuildMembers::users(41771983444115456, [81384788765712384, 613425648685547541]);
    by_id.presences = Some(true);
    by_id.nonce = Some("n1".into());
    sends_exactly(
        &by_id,
        r#"{"op":8,"d":{"guild_id":"41771983444115456","presences":true,"user_ids":["81384788765712384","613425648685547541"],"nonce":"n1"}}"#,
    );
    sends_exactly(
        &RequestSoundboardSounds { guild_ids: vec![613425648685547541, 81384788765712384] },
        r#"{"op":31,"d":{"guild_ids":["613425648685547541","81384788765712384"]}}"#,
    );
    sends_exactly(
        &VoiceStateUpdate {
            guild_id: 41771983423143937,
            channel_id: Some(127121515262115840),
            self_mute: false,
            self_deaf: false,
        },
        r#"{"op":4,"d":{"guild_id":"41771983423143937","channel_id":"127121515262115840","self_mute":false,"self_deaf":false}}"#,
    );
    sends_exactly(
        &VoiceStateUpdate { guild_id: 41771983423143937, channel_id: None, self_mute: true, self_deaf: false },
        r#"{"op":4,"d":{"guild_id":"41771983423143937","channel_id":null,"self_mute":true,"self_deaf":false}}"#,
    );
    sends_exactly(
        &Presence {
            since: Some(91879201),
            activities: vec![Activity::new(ActivityType::Playing, "Save the Oxford Comma")],
            status: OnlineStatus::Online,
            afk: false,
        },
        r#"{"op":3,"d":{"since":91879201,"activities":[{"name":"Save the Oxford Comma","type":0}],"status":"online","afk":false}}"#,
    );
    let custom =
        Activity { state: Some("Sorting members".into()), ..Activity::new(ActivityType::Custom, "Custom Status") };
    sends_exactly(
        &Presence { since: None, activities: vec![custom], status: OnlineStatus::Idle, afk: true },
        r#"{"op":3,"d":{"since":null,"activities":[{"name":"Custom Status","type":4,"state":"Sorting members"}],"status":"idle","afk":true}}"#,
    );
}

#[test]
fn snowflakes_read_as_numbers_too() {
    let request: RequestGuildMembers =
        serde_json::from_str(r#"{"guild_id":41771983444115456,"user_ids":[1,"2"],"limit":1}"#).unwrap();
    assert_eq!((request.guild_id, request.user_ids), (41771983444115456, Some(vec![1, 2])));
}

#[test]
fn activity_types_round_trip_through_json() {
    let kinds = [
        (ActivityType::Playing, 0),
        (ActivityType::Streaming, 1),
        (ActivityType::Listening, 2),
        (ActivityType::Watching, 3),
        (ActivityType::Custom, 4),
        (ActivityType::Competing, 5),
        (ActivityType::Unknown(9), 9),
    ];
    for (kind, code) in kinds {
        let activity = Activity::new(kind, "x");
        let json = serde_json::to_string(&activity).unwrap();
        assert_eq!(json, format!(r#"{{"name":"x","type":{code}}}"#));
        assert_eq!(serde_json::from_str::<Activity>(&json).unwrap().kind, kind);
        assert_eq!(u8::from(kind), code);
    }
}

#[test]
fn gateway_bot_answer_builds_a_group_with_its_url_total_and_identify_limits() {
    let sim = Simulator::start(SimulatorConfig::new().heartbeat_interval(Duration::from_millis(500)))
        .expect("simulator starts");
    // Two shards recommended, and one session start left today: the
    // preset identify queue lets one shard identify and refuses the other.
    let answer = format!(
        r#"{{"url":"{}","shards":2,"session_start_limit":{{"total":1000,"remaining":1,"reset_after":60000,"max_concurrency":1}}}}"#,
        sim.url()
    );
    let bot: GatewayBot = serde_json::from_str(&answer).unwrap();
    let template = Config::new("sim-token", Intents::GUILDS)
        .base_url("wss://replaced.invalid")
        .compression(Compression::None)
        .reconnect_policy(fast_policy())
        .min_heartbeat_interval(Duration::from_millis(100))
        .events([event::READY]);
    let mut group = bot
        .group_builder(template)
        .spawn_drivers(|driver| {
            async_std::task::spawn(driver);
        })
        .build()
        .expect("group builds");
    let both = [ShardId::new(0, 2).unwrap(), ShardId::new(1, 2).unwrap()];
    assert_eq!(group.shard_ids(), both);

    let (mut ready, mut refused) = (Vec::new(), Vec::new());
    async_io::block_on(async {
        while ready.len() + refused.len() < 2 {
            let timeout = async_io::Timer::after(WAIT);
            let item = match futures::future::select(group.next(), timeout).await {
                futures::future::Either::Left((item, _)) => item.expect("group stream ended"),
                futures::future::Either::Right(_) => panic!("no group item within {WAIT:?}"),
            };
            match item {
                Ok(dispatch) => {
                    assert_eq!(dispatch.event(), event::READY, "the filter lets READY alone through");
                    ready.push(dispatch.shard());
                }
                Err(stopped) => {
                    assert!(
                        matches!(
                            stopped.error,
                            ShardError::Identify(IdentifyError::BudgetExhausted { remaining: 0, .. })
                        ),
                        "{stopped}"
                    );
                    refused.push(stopped.shard);
                }
            }
        }
    });
    assert_eq!((ready.len(), refused.len()), (1, 1));
    assert_ne!(ready, refused);
    assert_eq!(sim.identifies().len(), 1, "the budget allowed one Identify");
}
