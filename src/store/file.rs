//! [`FileSessionStore`]: one JSON file per shard, replaced atomically.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_channel::oneshot;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::{SessionStore, SessionStoreError, DEFAULT_SESSION_TTL};
use crate::session::{Session, ShardSession};
use crate::shard_id::ShardId;

type Job = Box<dyn FnOnce() + Send>;

/// A [`SessionStore`] in a directory: one JSON file per shard,
/// `shard-<id>-of-<total>.json`, holding the [`ShardSession`] and when it
/// was saved.
///
/// Each save writes a temporary file in the same directory and renames it
/// over the shard's file, so a reader (the next process) sees the old
/// record or the new one, never a torn one. Files are created readable by
/// their owner only (mode `0600` on Unix): a session id lets whoever holds
/// the token resume the session.
///
/// **Durability.** By default the store survives the *process* crashing
/// at any moment: a completed rename is in the kernel's page cache, which
/// outlives the process. It does not promise to survive the *machine*
/// losing power; with [`durable(true)`](Self::durable) each save also
/// `fsync`s the file before the rename and the directory after it (on
/// Unix), which costs a disk flush per save (at most one per shard per
/// checkpoint interval).
///
/// File I/O runs on one background thread per store (started on first use,
/// ended when the store and its clones are dropped), never on the executor
/// that drives the shards. Clones share the thread.
///
/// ```no_run
/// # fn build() -> Result<(), Box<dyn std::error::Error>> {
/// use discord_gateway_stream::store::FileSessionStore;
/// use discord_gateway_stream::{Config, Intents, ShardGroup};
///
/// let store = FileSessionStore::new("/var/lib/my-bot/sessions")?;
/// let config = Config::new(std::env::var("DISCORD_TOKEN")?, Intents::GUILDS);
/// let group = ShardGroup::builder(config, 16).session_store(store).build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FileSessionStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    durable: bool,
    max_age: Option<Duration>,
    worker: OnceLock<mpsc::Sender<Job>>,
}

/// What a shard's file holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    shard: ShardId,
    session: Session,
    /// Milliseconds since the Unix epoch when it was saved.
    saved_at_ms: u64,
}

impl FileSessionStore {
    /// A store in `dir`, created (with its parents) if missing. Sessions
    /// older than [`DEFAULT_SESSION_TTL`] are not loaded; saves are not
    /// `fsync`ed (see [`durable`](Self::durable)).
    ///
    /// Temporary files a crashed process left behind (it died between
    /// writing one and renaming it) are removed here once they are a minute
    /// old; younger ones may belong to a process still saving.
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<FileSessionStore> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        remove_stale_temporaries(&dir);
        Ok(FileSessionStore {
            inner: Arc::new(Inner { dir, durable: false, max_age: Some(DEFAULT_SESSION_TTL), worker: OnceLock::new() }),
        })
    }

    /// When `true`, every save is flushed to disk (`fsync` of the file, then
    /// of the directory after the rename), so it survives a power loss, not
    /// only a process crash. Default `false`.
    pub fn durable(self, durable: bool) -> FileSessionStore {
        self.with(|inner| inner.durable = durable)
    }

    /// Records saved longer ago than `max_age` are not loaded (the session
    /// has almost surely expired; see [`DEFAULT_SESSION_TTL`]); `None` loads
    /// them whatever their age. A shard whose session does not change saves
    /// it again every third of `max_age`, so a quiet but live session's
    /// record stays loadable.
    pub fn max_age(self, max_age: Option<Duration>) -> FileSessionStore {
        self.with(|inner| inner.max_age = max_age)
    }

    /// The file that holds `shard`'s session.
    pub fn path(&self, shard: ShardId) -> PathBuf {
        self.inner.dir.join(format!("shard-{}-of-{}.json", shard.id, shard.total))
    }

    fn with(self, change: impl FnOnce(&mut Inner)) -> FileSessionStore {
        let inner = match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner,
            Err(shared) => Inner {
                dir: shared.dir.clone(),
                durable: shared.durable,
                max_age: shared.max_age,
                worker: OnceLock::new(),
            },
        };
        let mut inner = inner;
        change(&mut inner);
        FileSessionStore { inner: Arc::new(inner) }
    }

    /// Runs `work` on the store's thread; the future resolves with its result.
    fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, SessionStoreError> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, SessionStoreError>> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply.send(work());
        });
        let sent = self.worker().and_then(|worker| {
            worker.send(job).map_err(|_| SessionStoreError::Io("the session store thread is gone".into()))
        });
        async move {
            sent?;
            answer.await.map_err(|_| SessionStoreError::Io("the session store thread stopped".into()))?
        }
        .boxed()
    }

    fn worker(&self) -> Result<&mpsc::Sender<Job>, SessionStoreError> {
        if let Some(worker) = self.inner.worker.get() {
            return Ok(worker);
        }
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("dgs-session-store".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .map_err(|error| SessionStoreError::Io(format!("starting the session store thread: {error}")))?;
        // Another caller may have won the race: its thread serves, ours ends
        // as soon as its sender (dropped here) is gone.
        Ok(self.inner.worker.get_or_init(|| tx))
    }
}

impl SessionStore for FileSessionStore {
    fn load(&self, shard: ShardId) -> BoxFuture<'static, Result<Option<ShardSession>, SessionStoreError>> {
        let path = self.path(shard);
        let max_age = self.inner.max_age;
        self.run(move || {
            let bytes = match fs::read(&path) {
                Ok(bytes) => bytes,
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(error) => return Err(SessionStoreError::Io(format!("reading {}: {error}", path.display()))),
            };
            let record: Record =
                serde_json::from_slice(&bytes).map_err(|error| super::corrupt(path.display(), &error))?;
            let age = Duration::from_millis(now_ms().saturating_sub(record.saved_at_ms));
            if max_age.is_some_and(|max| age > max) {
                tracing::info!(shard = %record.shard, ?age, "stored session too old to resume; not loaded");
                return Ok(None);
            }
            Ok(Some(ShardSession { shard: record.shard, session: record.session }))
        })
    }

    fn save(&self, session: ShardSession) -> BoxFuture<'static, Result<(), SessionStoreError>> {
        let path = self.path(session.shard);
        let durable = self.inner.durable;
        self.run(move || {
            let record = Record { shard: session.shard, session: session.session, saved_at_ms: now_ms() };
            let bytes = serde_json::to_vec(&record).map_err(|error| SessionStoreError::Backend(error.to_string()))?;
            write_atomically(&path, &bytes, durable)
                .map_err(|error| SessionStoreError::Io(format!("writing {}: {error}", path.display())))
        })
    }

    fn clear(&self, shard: ShardId) -> BoxFuture<'static, Result<(), SessionStoreError>> {
        let path = self.path(shard);
        let durable = self.inner.durable;
        self.run(move || match fs::remove_file(&path) {
            Ok(()) => {
                if durable {
                    sync_dir(&path).map_err(|error| SessionStoreError::Io(error.to_string()))?;
                }
                Ok(())
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(SessionStoreError::Io(format!("removing {}: {error}", path.display()))),
        })
    }

    /// [`max_age`](Self::max_age): shards save an unchanged session again
    /// every third of it.
    fn expiry(&self) -> Option<Duration> {
        self.inner.max_age
    }
}

/// Writes `bytes` to a temporary file beside `path` and renames it over
/// `path`: readers see the old contents or the new, never a mix.
fn write_atomically(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().and_then(|name| name.to_str()).unwrap_or("session");
    // Unique per process and write: two processes (an old one shutting down,
    // a new one starting) never share a temporary file.
    let temp =
        path.with_file_name(format!(".{name}.{}.{}.tmp", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let written = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp)?;
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
        drop(file);
        fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written?;
    if durable {
        sync_dir(path)?;
    }
    Ok(())
}

/// Removes the temporary files of [`write_atomically`] in `dir` older than
/// [`STALE_TEMPORARY`]: a process that died between creating one and
/// renaming it left it there, and nothing else ever would remove it.
/// Failures are ignored (the files are only clutter).
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with(".shard-") && name.ends_with(".tmp")) {
            continue;
        }
        let modified = entry.metadata().and_then(|metadata| metadata.modified());
        let stale = modified.is_ok_and(|at| at.elapsed().is_ok_and(|age| age >= STALE_TEMPORARY));
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// How old a temporary file must be before [`FileSessionStore::new`] takes
/// it for a crashed process's (a live one renames it within moments).
const STALE_TEMPORARY: Duration = Duration::from_secs(60);

/// Flushes the directory entry of `path` (the rename or the removal).
fn sync_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

impl fmt::Debug for FileSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSessionStore")
            .field("dir", &self.inner.dir)
            .field("durable", &self.inner.durable)
            .field("max_age", &self.inner.max_age)
            .finish()
    }
}
