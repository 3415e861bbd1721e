//! Where the CPU went during a bench window: per group of threads and processes, in cores,
//! read from /proc (Linux; elsewhere nothing is reported). Times in /proc are in USER_HZ,
//! which Linux fixes at 100 for user space on every architecture it runs on.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use sqlx::PgPool;

/// /proc's clock ticks per second.
const USER_HZ: f64 = 100.0;

/// The appview's indexer threads (`plyr-indexer*` under `run`, all of `index`).
pub const INDEXER: &str = "plyr-appview: indexer threads";
/// The appview's other threads: the server's.
pub const SERVER: &str = "plyr-appview: server threads";
/// The Postgres backends the indexer writes through.
pub const WRITER: &str = "Postgres: the indexer's backends";

/// How a `plyr-appview` child's threads are counted.
#[derive(Debug, Clone, Copy)]
pub enum Role {
    /// `run`: threads named `plyr-indexer*` are the indexer's, the rest the server's.
    Run,
    /// `serve`: all the server's.
    Serve,
    /// `index`: all the indexer's.
    Index,
}

/// Cumulative ticks at one moment: the appview's threads by group, the bench and its finished
/// children, every Postgres process by pid, and the whole machine.
#[derive(Debug)]
pub struct Snapshot {
    at: Instant,
    groups: BTreeMap<&'static str, u64>,
    postgres: HashMap<u32, u64>,
    /// From /proc/stat: busy (user, nice, system, irq, softirq) and stolen.
    busy: u64,
    steal: u64,
}

/// Cores used per group between two snapshots, with the machine's busy and stolen cores.
#[derive(Debug, Clone)]
pub struct Usage {
    pub groups: Vec<(&'static str, f64)>,
    pub busy: f64,
    pub steal: f64,
}

/// This database's Postgres backends and their `application_name` (`plyr-appview server`,
/// `plyr-appview indexer`), to say whose CPU they used.
pub async fn backends(pool: &PgPool) -> anyhow::Result<Vec<(i32, String)>> {
    Ok(sqlx::query_as(
        "select pid, coalesce(application_name, '') from pg_stat_activity \
         where datname = current_database()",
    )
    .fetch_all(pool)
    .await?)
}

/// Every thread of the `plyr-appview` children: its group ([`INDEXER`] or [`SERVER`]) and its
/// /proc directory.
fn appview_threads(appviews: &[(u32, Role)]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for &(pid, role) in appviews {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.filter_map(Result::ok) {
            let dir = task.path().to_string_lossy().into_owned();
            let indexer = match role {
                Role::Run => comm(&format!("{dir}/comm")).starts_with("plyr-indexer"),
                Role::Serve => false,
                Role::Index => true,
            };
            out.push((if indexer { INDEXER } else { SERVER }, dir));
        }
    }
    out
}

/// Every thread of every process named `name`, by /proc directory.
fn threads_of(name: &str) -> Vec<String> {
    processes_named(name)
        .into_iter()
        .filter_map(|pid| std::fs::read_dir(format!("/proc/{pid}/task")).ok())
        .flat_map(|tasks| tasks.filter_map(Result::ok))
        .map(|task| task.path().to_string_lossy().into_owned())
        .collect()
}

/// utime + stime of a /proc `stat` file (process or thread), or of its waited-for children.
fn stat_ticks(path: &str, children: bool) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces; the fields after it are fixed.
    let fields: Vec<&str> = text.get(text.rfind(')')? + 2..)?.split(' ').collect();
    let at = if children { 13 } else { 11 };
    let user: u64 = fields.get(at)?.parse().ok()?;
    let system: u64 = fields.get(at + 1)?.parse().ok()?;
    Some(user + system)
}

fn comm(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|c| c.trim().to_owned())
        .unwrap_or_default()
}

/// Busy and steal ticks of the whole machine.
fn machine() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let at = |i: usize| ticks.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    (at(0) + at(1) + at(2) + at(5) + at(6), at(7))
}

/// Pids of every process whose command name is `name`.
fn processes_named(name: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| comm(&format!("/proc/{pid}/comm")) == name)
        .collect()
}

impl Snapshot {
    /// Reads every group now. `appviews` are the `plyr-appview` children and how to count their
    /// threads. The bench's own time includes its scripted Jetstream; its waited-for children
    /// (oha, once the run that started it has ended; pgbench) count apart.
    pub fn take(appviews: &[(u32, Role)]) -> Snapshot {
        let mut groups: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut add = |group: &'static str, ticks: Option<u64>| {
            *groups.entry(group).or_default() += ticks.unwrap_or(0);
        };
        for (group, dir) in appview_threads(appviews) {
            add(group, stat_ticks(&format!("{dir}/stat"), false));
        }
        add(
            "the bench (its scripted Jetstream)",
            stat_ticks("/proc/self/stat", false),
        );
        add("oha", stat_ticks("/proc/self/stat", true));
        let postgres = processes_named("postgres")
            .into_iter()
            .filter_map(|pid| Some((pid, stat_ticks(&format!("/proc/{pid}/stat"), false)?)))
            .collect();
        let (busy, steal) = machine();
        Snapshot {
            at: Instant::now(),
            groups,
            postgres,
            busy,
            steal,
        }
    }

    /// Cores used per group from `self` to `later`. Postgres backends are named by
    /// `backends` (`(pid, application_name)`, read at the end: a backend born in the window
    /// counts whole); every other Postgres process is "Postgres: other".
    pub fn until(&self, later: &Snapshot, backends: &[(i32, String)]) -> Usage {
        let secs = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let cores = |ticks: u64| ticks as f64 / USER_HZ / secs;
        let mut groups: BTreeMap<&'static str, u64> = later
            .groups
            .iter()
            .map(|(group, to)| {
                let from = self.groups.get(group).copied().unwrap_or(0);
                (*group, to.saturating_sub(from))
            })
            .collect();
        for (pid, to) in &later.postgres {
            let from = self.postgres.get(pid).copied().unwrap_or(0);
            let app = backends
                .iter()
                .find(|(p, _)| u32::try_from(*p).is_ok_and(|p| p == *pid))
                .map(|(_, app)| app.as_str());
            let group = match app {
                Some(app) if app.contains("indexer") => WRITER,
                Some(app) if app.contains("server") => "Postgres: the server's backends",
                _ => "Postgres: other",
            };
            *groups.entry(group).or_default() += to.saturating_sub(from);
        }
        Usage {
            groups: groups.into_iter().map(|(g, t)| (g, cores(t))).collect(),
            busy: cores(later.busy.saturating_sub(self.busy)),
            steal: cores(later.steal.saturating_sub(self.steal)),
        }
    }
}

impl Usage {
    /// The cores `group` used, 0 when it used none.
    pub fn of(&self, group: &str) -> f64 {
        self.groups
            .iter()
            .find(|(g, _)| *g == group)
            .map_or(0.0, |(_, cores)| *cores)
    }

    /// The mean of several windows' usage, group by group (a group missing from a window
    /// counts 0 there).
    pub fn mean(windows: &[Usage]) -> Usage {
        let n = windows.len().max(1) as f64;
        let mut groups: BTreeMap<&'static str, f64> = BTreeMap::new();
        for window in windows {
            for (group, used) in &window.groups {
                *groups.entry(group).or_default() += used / n;
            }
        }
        Usage {
            groups: groups.into_iter().collect(),
            busy: windows.iter().map(|w| w.busy).sum::<f64>() / n,
            steal: windows.iter().map(|w| w.steal).sum::<f64>() / n,
        }
    }

    /// One line per group, then the machine's busy and stolen cores: `self` beside `other`.
    pub fn print_beside(&self, other: &Usage, headers: [&str; 2], cores: usize) {
        println!(
            "| where (cores of {cores}) | {} | {} |",
            headers[0], headers[1]
        );
        println!("|---|---|---|");
        let mut names: Vec<&'static str> = self.groups.iter().map(|(g, _)| *g).collect();
        names.extend(other.groups.iter().map(|(g, _)| *g));
        names.sort_unstable();
        names.dedup();
        for group in names {
            println!(
                "| {group} | {:.2} | {:.2} |",
                self.of(group),
                other.of(group)
            );
        }
        println!(
            "| the machine, busy | {:.2} | {:.2} |",
            self.busy, other.busy
        );
        println!(
            "| stolen by the host | {:.2} | {:.2} |",
            self.steal, other.steal
        );
    }
}

/// Time spent ready to run but not running (waiting for a CPU), and how many times the
/// threads were put on one: the second and third fields of /proc's `schedstat`
/// (`CONFIG_SCHED_INFO`). It does not move with the host's steal the way latency does, so it
/// shows how much of a read tail is the reads' threads queueing for a core.
#[derive(Debug, Default, Clone, Copy)]
pub struct Wait {
    pub ns: u64,
    pub runs: u64,
}

impl Wait {
    fn of(dirs: impl IntoIterator<Item = String>) -> Wait {
        let mut sum = Wait::default();
        for dir in dirs {
            let Ok(text) = std::fs::read_to_string(format!("{dir}/schedstat")) else {
                continue;
            };
            let fields: Vec<u64> = text
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            if let [_, waited, runs] = fields[..] {
                sum.ns += waited;
                sum.runs += runs;
            }
        }
        sum
    }

    fn since(self, before: Wait) -> Wait {
        Wait {
            ns: self.ns.saturating_sub(before.ns),
            runs: self.runs.saturating_sub(before.runs),
        }
    }

    fn plus(self, other: Wait) -> Wait {
        Wait {
            ns: self.ns + other.ns,
            runs: self.runs + other.runs,
        }
    }

    /// Mean wait each time a thread was put on a CPU, in µs.
    pub fn per_run_us(&self) -> f64 {
        self.ns as f64 / 1e3 / self.runs.max(1) as f64
    }
}

/// The CPU wait of the reads' two ends: the appview's server threads and oha's threads (read
/// while oha runs: its threads are gone once it exits).
#[derive(Debug, Default, Clone, Copy)]
pub struct ReadWaits {
    pub server: Wait,
    pub oha: Wait,
}

impl ReadWaits {
    pub fn take(appviews: &[(u32, Role)]) -> ReadWaits {
        let server = appview_threads(appviews)
            .into_iter()
            .filter(|(group, _)| *group == SERVER)
            .map(|(_, dir)| dir);
        ReadWaits {
            server: Wait::of(server),
            oha: Wait::of(threads_of("oha")),
        }
    }

    pub fn since(self, before: ReadWaits) -> ReadWaits {
        ReadWaits {
            server: self.server.since(before.server),
            oha: self.oha.since(before.oha),
        }
    }

    /// Both windows' waits together.
    pub fn plus(self, other: ReadWaits) -> ReadWaits {
        ReadWaits {
            server: self.server.plus(other.server),
            oha: self.oha.plus(other.oha),
        }
    }
}
