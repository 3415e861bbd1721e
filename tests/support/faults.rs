//! Fault-injection pieces: a seeded RNG, a websocket proxy that cuts a connection in the middle
//! of a frame, a private Postgres that can be stopped and started under a running indexer, a
//! second test database for reference runs, and a table-by-table snapshot of the view.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::migrate::MigrateDatabase;
use sqlx::{PgPool, Postgres};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio::task::JoinHandle;

use super::appview::wait_for;

/// SplitMix64: a small deterministic RNG, so a failing seed replays exactly.
pub struct Rng(u64);

impl Rng {
    /// The seed from `FAULTS_SEED`, else the clock; printed so a failure can be replayed.
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("{test}: FAULTS_SEED={seed}");
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
}

/// What the proxy did to one connection it cut.
#[derive(Clone, Debug)]
pub struct Cut {
    /// Index of the websocket frame cut (0 = first frame after the handshake).
    pub frame: usize,
    /// Bytes of that frame (header + payload) forwarded before the close.
    pub sent: usize,
    /// The frame's full length.
    pub len: usize,
}

/// A TCP proxy in front of a websocket server. Connection `k` (in accept order) is cut after
/// forwarding `cuts[k]` whole server frames plus half of the next one's bytes; later connections
/// pass through untouched.
pub struct CuttingProxy {
    addr: SocketAddr,
    done: Arc<Mutex<Vec<Cut>>>,
    connections: Arc<Mutex<usize>>,
    task: JoinHandle<()>,
}

impl CuttingProxy {
    pub async fn start(upstream: SocketAddr, cuts: Vec<usize>) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let done = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0usize));
        let task = {
            let done = done.clone();
            let connections = connections.clone();
            tokio::spawn(async move {
                let mut tasks = tokio::task::JoinSet::new();
                while let Ok((client, _)) = listener.accept().await {
                    let k = {
                        let mut n = connections.lock().unwrap_or_else(PoisonError::into_inner);
                        *n += 1;
                        *n - 1
                    };
                    let cut = cuts.get(k).copied();
                    tasks.spawn(proxy(client, upstream, cut, done.clone()));
                    while tasks.try_join_next().is_some() {}
                }
            })
        };
        CuttingProxy {
            addr,
            done,
            connections,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The cuts made so far.
    pub fn cuts(&self) -> Vec<Cut> {
        self.done
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        *self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The length of the server (unmasked) websocket frame at the start of `buf`, once its header
/// is complete.
fn frame_len(buf: &[u8]) -> Option<usize> {
    let second = *buf.get(1)?;
    let masked = second & 0x80 != 0;
    let (payload, header) = match second & 0x7f {
        126 => (
            usize::from(u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => (
            usize::try_from(u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?)).ok()?,
            10,
        ),
        n => (usize::from(n), 2),
    };
    Some(header + if masked { 4 } else { 0 } + payload)
}

async fn proxy(
    mut client: TcpStream,
    upstream: SocketAddr,
    cut: Option<usize>,
    done: Arc<Mutex<Vec<Cut>>>,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut server_read, mut server_write) = server.into_split();
    let (mut client_read, mut client_write) = client.split();
    let up = async {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
    };
    let down = async {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let mut handshake_done = false;
        let mut frames = 0usize;
        loop {
            let Ok(n) = server_read.read(&mut chunk).await else {
                return;
            };
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            if !handshake_done {
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                if client_write.write_all(&buf[..end + 4]).await.is_err() {
                    return;
                }
                buf.drain(..end + 4);
                handshake_done = true;
            }
            // Forward whole frames; the one at the cut goes out half-written, then both close.
            while let Some(len) = frame_len(&buf) {
                if cut == Some(frames) {
                    if buf.len() < len {
                        break; // wait for the whole frame so "half" is exact
                    }
                    let half = len / 2;
                    let _ = client_write.write_all(&buf[..half]).await;
                    let _ = client_write.flush().await;
                    done.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(Cut {
                            frame: frames,
                            sent: half,
                            len,
                        });
                    return;
                }
                if buf.len() < len {
                    break;
                }
                if client_write.write_all(&buf[..len]).await.is_err() {
                    return;
                }
                buf.drain(..len);
                frames += 1;
            }
        }
    };
    // Whichever direction ends first ends the connection (dropping both sockets: a TCP close).
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

/// A Postgres server of our own (initdb into a temp dir, a free port), so a test can stop and
/// start it without disturbing the shared one other tests use.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    as_root: bool,
}

impl PrivatePostgres {
    /// initdb + start; `DATABASE_URL`-style URL of database `name` via [`Self::url`].
    pub async fn start() -> PrivatePostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("/usr/lib/postgresql (Postgres server binaries)")
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let version: u32 = e.file_name().to_str()?.parse().ok()?;
                Some((version, e.path().join("bin")))
            })
            .max()
            .map(|(_, bin)| bin)
            .expect("a Postgres version under /usr/lib/postgresql");
        let dir = tempfile::tempdir().expect("temp dir");
        // Postgres refuses to run as root: as root, run it as the postgres user.
        let as_root = std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false);
        if as_root {
            run(Command::new("chown").args(["postgres:postgres", path(dir.path())])).await;
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("addr").port()
        };
        let pg = PrivatePostgres {
            dir,
            bin,
            port,
            as_root,
        };
        let data = pg.data();
        pg.run_pg(
            "initdb",
            &["-D", &data, "-U", "postgres", "-A", "trust", "--no-sync"],
        )
        .await;
        pg.start_again().await;
        pg
    }

    fn data(&self) -> String {
        format!("{}/data", path(self.dir.path()))
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    async fn run_pg(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut command = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        command.args(args);
        run(&mut command).await;
    }

    /// `pg_ctl start`, waiting until it accepts connections.
    pub async fn start_again(&self) {
        let data = self.data();
        let log = format!("{}/log", path(self.dir.path()));
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            path(self.dir.path())
        );
        self.run_pg(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-o", &options, "-w", "start"],
        )
        .await;
    }

    /// `pg_ctl stop -m fast`: open connections are terminated, the server shuts down cleanly.
    pub async fn stop_fast(&self) {
        let data = self.data();
        self.run_pg("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"])
            .await;
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let exe = self.bin.join("pg_ctl");
        let data = self.data();
        let mut command = if self.as_root {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            std::process::Command::new(&exe)
        };
        let _ = command
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

async fn run(command: &mut Command) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run command");
    assert!(
        output.status.success(),
        "{command:?}: {}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A migrated database `name` at `base_url`'s server (dropped first if it exists).
pub async fn fresh_database(base_url: &str, name: &str) -> (String, PgPool) {
    let mut url = url::Url::parse(base_url).expect("database URL");
    url.set_path(name);
    let url = url.to_string();
    if Postgres::database_exists(&url).await.expect("exists") {
        Postgres::drop_database(&url).await.expect("drop");
    }
    Postgres::create_database(&url).await.expect("create");
    let pool = PgPool::connect(&url).await.expect("connect");
    plyr_migrations::MIGRATOR.run(&pool).await.expect("migrate");
    (url, pool)
}

/// Drops the database at `url` (its pools closed first).
pub async fn drop_database(url: &str) {
    Postgres::drop_database(url)
        .await
        .expect("drop reference database");
}

/// A short database name unique to this process and moment (Postgres truncates at 63 bytes).
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// Columns whose value is the wall clock of the write or of a background check, not the
/// stream's content: left out of the comparison.
const CLOCK_COLUMNS: &[&str] = &["identity_checked_at", "status_checked_at", "pending_since"];

/// Every table of the view (migrations bookkeeping aside), each as its sorted rows in JSON with
/// the clock columns removed.
pub async fn view_snapshot(pool: &PgPool) -> BTreeMap<String, Vec<String>> {
    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables \
         where table_schema = 'public' and table_type = 'BASE TABLE' \
         and table_name not like '\\_sqlx%' order by 1",
    )
    .fetch_all(pool)
    .await
    .expect("list tables");
    let mut out = BTreeMap::new();
    for table in tables {
        let dropped: Vec<String> = sqlx::query_scalar(
            "select column_name::text from information_schema.columns \
             where table_schema = 'public' and table_name = $1 \
             and (column_default like 'now()%' or column_name = any($2))",
        )
        .bind(&table)
        .bind(CLOCK_COLUMNS)
        .fetch_all(pool)
        .await
        .expect("list columns");
        // The table name comes from the catalog, quoted as an identifier.
        let sql = format!(
            "select (to_jsonb(t) - $1::text[])::text from \"{}\" t order by 1",
            table.replace('"', "\"\"")
        );
        let mut rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(&dropped)
            .fetch_all(pool)
            .await
            .expect("table rows");
        rows.sort(); // byte order, whatever the database's collation

        out.insert(table, rows);
    }
    out
}

/// Asserts two snapshots are equal table by table, naming the first differing rows.
pub fn assert_same_view(got: &BTreeMap<String, Vec<String>>, want: &BTreeMap<String, Vec<String>>) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "tables"
    );
    let mut differences = Vec::new();
    for (table, want_rows) in want {
        let got_rows = &got[table];
        if got_rows == want_rows {
            continue;
        }
        let missing: Vec<_> = want_rows
            .iter()
            .filter(|r| got_rows.binary_search(r).is_err())
            .take(3)
            .collect();
        let extra: Vec<_> = got_rows
            .iter()
            .filter(|r| want_rows.binary_search(r).is_err())
            .take(3)
            .collect();
        differences.push(format!(
            "table {table}: {} rows, reference {}; missing {missing:#?}; extra {extra:#?}",
            got_rows.len(),
            want_rows.len()
        ));
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// Polls the `source` cursor in `pool` until it reaches `at` (bounded by `limit`).
pub async fn wait_cursor(pool: &PgPool, source: &str, at: i64, limit: Duration) {
    wait_for(
        &format!("cursor {source} >= {at}"),
        limit,
        move || async move {
            let cursor = plyr_indexer::last_cursor(pool, source)
                .await
                .map_err(|e| e.to_string())?;
            if cursor.is_some_and(|c| c >= at) {
                Ok(())
            } else {
                Err(format!("at {cursor:?}"))
            }
        },
    )
    .await
}
