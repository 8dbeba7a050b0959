//! Checking a fix by running it: in a throwaway git worktree at the base commit with the fix's
//! files written, each changed file is checked by its language's own tool, then the
//! repository's own test command runs, and optionally a reproduction that must fail without the
//! fix and pass with it, and a test the fix must add that fails on the unfixed code.
//!
//! The commands are the operator's (from the config) and the code is the model's: both run
//! with an environment that holds none of the agent's variables (no tokens), in their own
//! process group, with CPU time, memory, file size and process limits, killed at a timeout, and
//! where the kernel lets an unprivileged process have namespaces of its own, without network and
//! with every mount read-only but the verification's own directory (`unshare --net --mount
//! --map-root-user`; where it does not, each step says what it ran without). Output is
//! kept as its last bytes only. A tool that is not installed makes its step *skipped*, never
//! passed. The worktree is removed whatever happens; the operator's work tree, index and
//! branches are never touched (git keeps the worktree's bookkeeping in `.git/worktrees` until
//! it is removed).

use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::Change;
use super::repository::RepositoryClient;

/// Bytes of a step's output kept (its end, where the failure is).
pub const OUTPUT_TAIL_BYTES: usize = 4096;
/// The longest a syntax check may take.
const SYNTAX_TIMEOUT: Duration = Duration::from_secs(60);

/// Limits on what a verification step may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub timeout: Duration,
    /// Data segment and private writable memory, bytes.
    pub max_memory: u64,
    /// Bytes any one file written may reach.
    pub max_file_size: u64,
    pub max_processes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(600),
            max_memory: 4 << 30,
            max_file_size: 1 << 30,
            max_processes: 512,
        }
    }
}

/// What a verification asks for (`[sinks.X.verify]`).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub syntax_check: bool,
    /// The repository's tests (`python3 -m pytest -q -x`), run by `sh -c`.
    pub command: Option<String>,
    /// Must fail without the fix and pass with it.
    pub reproduce: Option<String>,
    /// The fix must add or change a test that fails on the unfixed code (with `command`).
    pub require_test: bool,
    pub limits: Limits,
}

/// How one step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    Skipped,
}

/// One step of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// `syntax shop/cart.py`, `tests`, `reproduce without the fix`, …
    pub name: String,
    pub command: String,
    pub status: Status,
    pub duration_ms: u64,
    /// Why it failed or was skipped, in a line.
    pub reason: Option<String>,
    /// The end of its output (not yet redacted: the caller redacts before it leaves).
    pub output_tail: String,
}

/// Every step, in the order run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub steps: Vec<Step>,
}

impl Verification {
    /// No step failed.
    pub fn passed(&self) -> bool {
        self.steps.iter().all(|step| step.status != Status::Failed)
    }

    /// The first failed step.
    pub fn failure(&self) -> Option<&Step> {
        self.steps.iter().find(|step| step.status == Status::Failed)
    }
}

/// Why a verification could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("git worktree: {0}")]
    Worktree(String),
    #[error("copying the repository to verify in: {0}")]
    Copy(String),
    #[error("writing {path} into the worktree: {message}")]
    Write { path: String, message: String },
}

/// A detached worktree of `repo` at a commit, in a new temporary directory; removed on drop.
pub struct Worktree {
    repo: PathBuf,
    root: PathBuf,
    path: PathBuf,
}

/// Removes what a process killed during a verification left (its temporary worktree or copy,
/// named after its pid), and the worktree bookkeeping `repo` kept for it.
pub fn sweep_leftovers(repo: &Path) {
    let alive = |pid: &str| Path::new("/proc").join(pid).exists();
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix("tailfix-verify-")
                .or_else(|| name.strip_prefix("tailfix-copy-"))
                .and_then(|rest| rest.split('-').next());
            if let Some(pid) = pid
                && pid.parse::<u32>().is_ok()
                && pid != std::process::id().to_string()
                && !alive(pid)
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let _ = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["worktree", "prune"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Worktree {
    pub async fn add(repo: &Path, commit: &str) -> Result<Self, VerifyError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let root = std::env::temp_dir().join(format!(
            "tailfix-verify-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&root).map_err(|e| VerifyError::Worktree(e.to_string()))?;
        let path = root.join("tree");
        let worktree = Worktree {
            repo: repo.to_path_buf(),
            root,
            path,
        };
        let output = Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(["worktree", "add", "--detach", "--quiet"])
            .arg(&worktree.path)
            .arg(commit)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| VerifyError::Worktree(e.to_string()))?;
        if !output.status.success() {
            return Err(VerifyError::Worktree(
                String::from_utf8_lossy(&output.stderr).trim().to_string(),
            ));
        }
        Ok(worktree)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes each change's content into the worktree (paths were validated before; one that
    /// leaves the worktree is refused here too).
    pub fn write(&self, changes: &[&Change]) -> Result<(), VerifyError> {
        for change in changes {
            let relative = Path::new(&change.path);
            let inside = relative
                .components()
                .all(|component| matches!(component, Component::Normal(_)));
            let error = |message: String| VerifyError::Write {
                path: change.path.clone(),
                message,
            };
            if !inside {
                return Err(error("not a path inside the repository".to_string()));
            }
            let target = self.path.join(relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| error(e.to_string()))?;
            }
            std::fs::write(&target, &change.content).map_err(|e| error(e.to_string()))?;
        }
        Ok(())
    }
}

impl Drop for Worktree {
    fn drop(&mut self) {
        let _ = std::process::Command::new("git")
            .arg("-C")
            .arg(&self.repo)
            .args(["worktree", "remove", "--force"])
            .arg(&self.path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.root);
        let _ = std::process::Command::new("git")
            .arg("-C")
            .arg(&self.repo)
            .args(["worktree", "prune"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Most files and bytes copied from a remote repository to verify a fix in.
pub const MAX_COPY_FILES: usize = 5000;
pub const MAX_COPY_BYTES: usize = 64 << 20;

/// A git repository on this machine at the base commit: the operator's own (a worktree of it is
/// what is changed), or a copy made for the verification and removed with it.
pub struct Checkout {
    pub repo: PathBuf,
    pub commit: String,
    copy: Option<PathBuf>,
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if let Some(copy) = &self.copy {
            let _ = std::fs::remove_dir_all(copy);
        }
    }
}

impl Checkout {
    /// The operator's repository at `commit`.
    pub fn existing(repo: PathBuf, commit: String) -> Self {
        sweep_leftovers(&repo);
        Checkout {
            repo,
            commit,
            copy: None,
        }
    }

    /// A copy of the base branch made through the repository's API, committed into a new
    /// repository (bounded by [`MAX_COPY_FILES`] and [`MAX_COPY_BYTES`]).
    pub async fn copy_of(client: &dyn RepositoryClient) -> Result<Self, VerifyError> {
        let copy_error = |message: String| VerifyError::Copy(message);
        let files = client
            .list_files()
            .await
            .map_err(|e| copy_error(e.to_string()))?;
        if files.len() > MAX_COPY_FILES {
            return Err(copy_error(format!(
                "{} files, more than the {MAX_COPY_FILES} copied",
                files.len()
            )));
        }
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let root = std::env::temp_dir().join(format!(
            "tailfix-copy-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let mut checkout = Checkout {
            repo: root.clone(),
            commit: String::new(),
            copy: Some(root.clone()),
        };
        let mut bytes = 0;
        for path in &files {
            let relative = Path::new(path);
            if !relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
            {
                continue;
            }
            let Some(content) = client
                .get_file(path)
                .await
                .map_err(|e| copy_error(e.to_string()))?
            else {
                continue;
            };
            bytes += content.len();
            if bytes > MAX_COPY_BYTES {
                return Err(copy_error(format!(
                    "more than the {} MiB copied",
                    MAX_COPY_BYTES >> 20
                )));
            }
            let target = root.join(relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| copy_error(e.to_string()))?;
            }
            std::fs::write(&target, content).map_err(|e| copy_error(e.to_string()))?;
        }
        std::fs::create_dir_all(&root).map_err(|e| copy_error(e.to_string()))?;
        for args in [
            &["init", "-q"][..],
            &["add", "-A"],
            &[
                "-c",
                "user.name=tailfix",
                "-c",
                "user.email=tailfix@localhost",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "base",
            ],
        ] {
            let output = Command::new("git")
                .arg("-C")
                .arg(&root)
                .args(args)
                .stdin(Stdio::null())
                .output()
                .await
                .map_err(|e| copy_error(e.to_string()))?;
            if !output.status.success() {
                return Err(copy_error(
                    String::from_utf8_lossy(&output.stderr).trim().to_string(),
                ));
            }
        }
        checkout.commit = "HEAD".to_string();
        Ok(checkout)
    }
}

/// Runs `plan` on `changes` against `commit` of the git repository at `repo`.
pub async fn verify(
    repo: &Path,
    commit: &str,
    changes: &[Change],
    plan: &Plan,
) -> Result<Verification, VerifyError> {
    let worktree = Worktree::add(repo, commit).await?;
    let mut verification = Verification::default();
    let all: Vec<&Change> = changes.iter().collect();
    if let Some(reproduce) = &plan.reproduce {
        let step = run_shell(
            &worktree,
            "reproduce without the fix",
            reproduce,
            &plan.limits,
        )
        .await
        .expecting_failure("the reproduction passes without the fix");
        verification.steps.push(step);
    }
    if plan.require_test {
        let tests: Vec<&Change> = all
            .iter()
            .copied()
            .filter(|c| is_test_path(&c.path))
            .collect();
        match (&plan.command, tests.is_empty()) {
            (_, true) => verification.steps.push(Step::failed(
                "test added by the fix",
                "",
                "the fix adds or changes no test",
            )),
            (None, false) => verification.steps.push(Step::skipped(
                "test fails without the fix",
                "",
                "no verify.command to run the test with",
            )),
            (Some(command), false) => {
                worktree.write(&tests)?;
                let step = run_shell(
                    &worktree,
                    "test fails without the fix",
                    command,
                    &plan.limits,
                )
                .await
                .expecting_failure("the fix's test passes on the unfixed code");
                verification.steps.push(step);
            }
        }
    }
    worktree.write(&all)?;
    if plan.syntax_check {
        for change in &all {
            verification
                .steps
                .push(check_syntax(&worktree, &change.path).await);
        }
    }
    if let Some(command) = &plan.command {
        verification
            .steps
            .push(run_shell(&worktree, "tests", command, &plan.limits).await);
    }
    if let Some(reproduce) = &plan.reproduce {
        verification
            .steps
            .push(run_shell(&worktree, "reproduce with the fix", reproduce, &plan.limits).await);
    }
    Ok(verification)
}

/// A test file by its name, as test runners find them (`tests/…`, `test_x.py`, `x_test.go`,
/// `x.test.js`, `x_spec.rb`, `XTest.java`).
pub fn is_test_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    let name = lower.rsplit('/').next().unwrap_or_default();
    lower
        .split('/')
        .any(|part| matches!(part, "test" | "tests" | "spec" | "__tests__"))
        || name.starts_with("test_")
        || name.contains("_test.")
        || name.contains(".test.")
        || name.contains("_spec.")
        || name.contains(".spec.")
        || (path.ends_with("Test.java")
            || path.ends_with("Tests.java")
            || path.ends_with("Test.kt"))
}

impl Step {
    fn failed(name: &str, command: &str, reason: &str) -> Self {
        Step {
            name: name.to_string(),
            command: command.to_string(),
            status: Status::Failed,
            duration_ms: 0,
            reason: Some(reason.to_string()),
            output_tail: String::new(),
        }
    }

    fn skipped(name: &str, command: &str, reason: &str) -> Self {
        Step {
            status: Status::Skipped,
            ..Step::failed(name, command, reason)
        }
    }

    /// A step that had to fail: its failure passes it, its success fails it with `reason`.
    fn expecting_failure(mut self, reason: &str) -> Self {
        match self.status {
            Status::Failed => {
                self.status = Status::Passed;
                self.reason = Some("failed, as it must".to_string());
            }
            Status::Passed => {
                self.status = Status::Failed;
                self.reason = Some(reason.to_string());
            }
            Status::Skipped => {}
        }
        self
    }
}

/// The program and arguments that check a file's syntax, by its extension; `None` for a file
/// no checker is known for.
fn syntax_checker(path: &str, worktree: &Path) -> Option<(&'static str, Vec<String>)> {
    let extension = path.rsplit_once('.')?.1;
    let file = path.to_string();
    Some(match extension {
        "py" => ("python3", vec!["-m".into(), "py_compile".into(), file]),
        "js" | "mjs" | "cjs" => ("node", vec!["--check".into(), file]),
        "rb" => ("ruby", vec!["-c".into(), file]),
        "go" => ("gofmt", vec!["-e".into(), "-l".into(), file]),
        "java" => (
            "javac",
            vec![
                "-d".into(),
                worktree
                    .join(".tailfix-javac")
                    .to_string_lossy()
                    .into_owned(),
                "-proc:none".into(),
                "-implicit:none".into(),
                "-sourcepath".into(),
                java_source_root(path),
                file,
            ],
        ),
        // Parses without judging the formatting (`--check` would fail a well-formed file that
        // is formatted otherwise).
        "rs" => (
            "rustfmt",
            vec![
                "--edition".into(),
                "2021".into(),
                "--emit".into(),
                "stdout".into(),
                file,
            ],
        ),
        _ => return None,
    })
}

/// The directory a Java file's package path starts in (`src/main/java` for
/// `src/main/java/shop/Cart.java` when it declares `package shop`), by the Maven layout or else
/// the file's own directory.
fn java_source_root(path: &str) -> String {
    for root in ["src/main/java", "src/test/java", "src"] {
        if path.starts_with(&format!("{root}/")) {
            return root.to_string();
        }
    }
    path.rsplit_once('/')
        .map_or(".", |(dir, _)| dir)
        .to_string()
}

async fn check_syntax(worktree: &Worktree, path: &str) -> Step {
    let name = format!("syntax {path}");
    let Some((program, args)) = syntax_checker(path, worktree.path()) else {
        return Step::skipped(&name, "", "no syntax checker for this kind of file");
    };
    let command = format!("{program} {}", args.join(" "));
    if !installed(program) {
        return Step::skipped(&name, &command, &format!("{program} is not installed"));
    }
    let limits = Limits {
        timeout: SYNTAX_TIMEOUT,
        ..Limits::default()
    };
    let mut invocation = vec![program.to_string()];
    invocation.extend(args);
    run(worktree, &name, &command, &invocation, &limits).await
}

/// Whether `program` is on the agent's `PATH`.
fn installed(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let candidate = dir.join(program);
            candidate.metadata().is_ok_and(|m| {
                m.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
        })
    })
}

async fn run_shell(worktree: &Worktree, name: &str, command: &str, limits: &Limits) -> Step {
    let invocation = vec!["sh".to_string(), "-c".to_string(), command.to_string()];
    run(worktree, name, command, &invocation, limits).await
}

/// How far a command can be shut in here, found once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sandbox {
    /// No network, and every mount read-only but its own directory (`/proc`, `/dev`, `/sys`
    /// aside): the code a model wrote cannot touch the operator's files.
    Full,
    /// No network; the file system as the agent sees it.
    NetworkOnly,
    /// Neither: the kernel gives this process no namespaces.
    None,
}

/// Run by `sh` inside new user, mount and network namespaces: makes the verification's
/// directory (`$1`) a mount of its own, every other mount read-only, then runs the command.
const SANDBOX_SCRIPT: &str = r#"root=$1; shift
mount --bind "$root" "$root" || exit 125
awk '{print $2}' /proc/self/mounts | sort -u | while read -r m; do
  case "$m" in "$root"|/proc|/proc/*|/dev|/dev/*|/sys|/sys/*) continue;; esac
  mount -o remount,bind,ro "$m" 2>/dev/null
done
# The working directory was found before the mounts changed: find it again, on the new one.
cd "$PWD" || exit 125
exec "$@""#;

fn sandbox() -> Sandbox {
    static FOUND: OnceLock<Sandbox> = OnceLock::new();
    *FOUND.get_or_init(|| {
        if !installed("unshare") {
            return Sandbox::None;
        }
        let quiet = |command: &mut std::process::Command| {
            command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        };
        let probe =
            std::env::temp_dir().join(format!("tailfix-sandbox-probe-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&probe);
        let outside =
            std::env::temp_dir().join(format!("tailfix-sandbox-outside-{}", std::process::id()));
        let confined = quiet(
            std::process::Command::new("unshare")
                .args([
                    "--net",
                    "--mount",
                    "--map-root-user",
                    "--",
                    "sh",
                    "-c",
                    SANDBOX_SCRIPT,
                    "sandbox",
                ])
                .arg(&probe)
                .args([
                    "sh",
                    "-c",
                    "touch \"$0/inside\" && ! touch \"$1\" 2>/dev/null",
                ])
                .arg(&probe)
                .arg(&outside),
        ) && probe.join("inside").exists()
            && !outside.exists();
        let _ = std::fs::remove_dir_all(&probe);
        let _ = std::fs::remove_file(&outside);
        if confined {
            Sandbox::Full
        } else if quiet(std::process::Command::new("unshare").args([
            "--net",
            "--map-root-user",
            "true",
        ])) {
            Sandbox::NetworkOnly
        } else {
            Sandbox::None
        }
    })
}

/// Runs `invocation` in the worktree under `limits`, with a clean environment and, where the
/// kernel allows, no network.
async fn run(
    worktree: &Worktree,
    name: &str,
    command: &str,
    invocation: &[String],
    limits: &Limits,
) -> Step {
    let started = Instant::now();
    let sandbox = sandbox();
    let mut argv: Vec<String> = Vec::new();
    match sandbox {
        Sandbox::Full => {
            argv.extend(
                [
                    "unshare",
                    "--net",
                    "--mount",
                    "--map-root-user",
                    "--",
                    "sh",
                    "-c",
                    SANDBOX_SCRIPT,
                    "sandbox",
                ]
                .map(String::from),
            );
            argv.push(worktree.root.to_string_lossy().into_owned());
        }
        Sandbox::NetworkOnly => {
            argv.extend(["unshare", "--net", "--map-root-user", "--"].map(String::from));
        }
        Sandbox::None => {}
    }
    argv.extend(invocation.iter().cloned());
    let home = worktree.root.join("home");
    let _ = std::fs::create_dir_all(&home);
    let mut child = Command::new(&argv[0]);
    child
        .args(&argv[1..])
        .current_dir(worktree.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("TMPDIR", &home)
        .env("LANG", "C.UTF-8")
        .env("CI", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let limits = *limits;
    // SAFETY: between fork and exec only async-signal-safe calls are made (setsid, setrlimit).
    unsafe {
        child.pre_exec(move || {
            libc::setsid();
            let set = |resource, value: u64| {
                let limit = libc::rlimit {
                    rlim_cur: value as libc::rlim_t,
                    rlim_max: value as libc::rlim_t,
                };
                libc::setrlimit(resource, &limit);
            };
            set(libc::RLIMIT_CPU, limits.timeout.as_secs().max(1));
            // Data, not address space: a JVM or V8 reserves far more address space than it uses.
            set(libc::RLIMIT_DATA, limits.max_memory);
            set(libc::RLIMIT_FSIZE, limits.max_file_size);
            set(libc::RLIMIT_NPROC, limits.max_processes);
            set(libc::RLIMIT_CORE, 0);
            Ok(())
        });
    }
    let mut step = Step {
        name: name.to_string(),
        command: command.to_string(),
        status: Status::Failed,
        duration_ms: 0,
        reason: None,
        output_tail: String::new(),
    };
    let mut spawned = match child.spawn() {
        Ok(spawned) => spawned,
        Err(error) => {
            step.reason = Some(format!("cannot start {}: {error}", argv[0]));
            return step;
        }
    };
    let pid = spawned.id();
    let (stdout, stderr) = (spawned.stdout.take(), spawned.stderr.take());
    let collect = async {
        let (out, err) = tokio::join!(tail_of(stdout), tail_of(stderr));
        let status = spawned.wait().await;
        (out, err, status)
    };
    match tokio::time::timeout(limits.timeout, collect).await {
        Ok((out, err, status)) => {
            let mut output = out;
            output.extend_from_slice(&err);
            step.output_tail = tail_text(&output);
            match status {
                Ok(status) if status.success() => step.status = Status::Passed,
                Ok(status) => {
                    step.reason = Some(match status.code() {
                        Some(code) => format!("exited with {code}"),
                        None => "killed by a signal (a limit was reached?)".to_string(),
                    });
                }
                Err(error) => step.reason = Some(format!("waiting for it: {error}")),
            }
        }
        Err(_) => {
            if let Some(pid) = pid {
                // Its whole process group: what the command started goes too.
                // SAFETY: a plain syscall on a process group this step created.
                unsafe {
                    libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
                }
            }
            step.reason = Some(format!("timed out after {:?}", limits.timeout));
        }
    }
    if step.reason.is_none() {
        step.reason = match sandbox {
            Sandbox::Full => None,
            Sandbox::NetworkOnly => Some(
                "ran able to write outside its worktree (no mount namespace allowed here)"
                    .to_string(),
            ),
            Sandbox::None => Some(
                "ran with the network and able to write outside its worktree (no namespaces allowed here)"
                    .to_string(),
            ),
        };
    }
    step.duration_ms = started.elapsed().as_millis() as u64;
    step
}

/// The last [`OUTPUT_TAIL_BYTES`] a pipe gives, read to its end.
async fn tail_of<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>) -> Vec<u8> {
    let Some(mut pipe) = pipe else {
        return Vec::new();
    };
    let mut kept: Vec<u8> = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&buffer[..n]);
                if kept.len() > 2 * OUTPUT_TAIL_BYTES {
                    kept.drain(..kept.len() - OUTPUT_TAIL_BYTES);
                }
            }
        }
    }
    kept
}

fn tail_text(output: &[u8]) -> String {
    let start = output.len().saturating_sub(OUTPUT_TAIL_BYTES);
    String::from_utf8_lossy(&output[start..]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remediation::Operation;

    fn git(dir: &Path, args: &[&str]) -> String {
        let output = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .expect("git runs");
        assert!(output.status.success(), "git {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// A repository with a buggy module and a test of it; returns its path and commit.
    fn repository(dir: &Path) -> (PathBuf, String) {
        let repo = dir.join("repo");
        std::fs::create_dir_all(repo.join("tests")).unwrap();
        std::fs::write(
            repo.join("rates.py"),
            "def to_eur(amount):\n    return amount / 0\n",
        )
        .unwrap();
        std::fs::write(
            repo.join("tests/test_rates.py"),
            "import sys, os\nsys.path.insert(0, os.getcwd())\nimport rates\nassert rates.to_eur(2) == 2\n",
        )
        .unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["add", "."]);
        git(
            &repo,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-q",
                "-m",
                "base",
            ],
        );
        let commit = git(&repo, &["rev-parse", "HEAD"]);
        (repo, commit)
    }

    fn change(path: &str, content: &str) -> Change {
        Change {
            path: path.to_string(),
            operation: Operation::Update,
            content: content.to_string(),
            line_start: 1,
            line_end: 1,
            metadata: Default::default(),
        }
    }

    fn plan(command: Option<&str>) -> Plan {
        Plan {
            syntax_check: true,
            command: command.map(str::to_string),
            limits: Limits {
                timeout: Duration::from_secs(60),
                ..Limits::default()
            },
            ..Plan::default()
        }
    }

    fn untouched(repo: &Path) {
        assert_eq!(git(repo, &["status", "--porcelain"]), "");
        assert_eq!(
            git(repo, &["worktree", "list", "--porcelain"])
                .matches("worktree ")
                .count(),
            1
        );
        assert_eq!(git(repo, &["branch", "--format=%(refname:short)"]), "main");
    }

    #[tokio::test]
    async fn a_right_fix_passes_a_syntax_error_and_a_failing_test_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, commit) = repository(dir.path());
        let test = "python3 tests/test_rates.py";

        let right = [change(
            "rates.py",
            "def to_eur(amount):\n    return amount * 1\n",
        )];
        let verification = verify(&repo, &commit, &right, &plan(Some(test)))
            .await
            .unwrap();
        assert!(verification.passed(), "{verification:#?}");
        let names: Vec<&str> = verification.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["syntax rates.py", "tests"]);

        let broken = [change("rates.py", "RATES = {\"EUR\": 1.0,, }\n")];
        let verification = verify(&repo, &commit, &broken, &plan(Some(test)))
            .await
            .unwrap();
        let failure = verification.failure().expect("a syntax error fails");
        assert_eq!(failure.name, "syntax rates.py");
        assert!(failure.output_tail.contains("SyntaxError"), "{failure:#?}");

        let wrong = [change(
            "rates.py",
            "def to_eur(amount):\n    return amount * 2\n",
        )];
        let verification = verify(&repo, &commit, &wrong, &plan(Some(test)))
            .await
            .unwrap();
        let failure = verification.failure().expect("a failing test fails");
        assert_eq!(failure.name, "tests");
        assert!(
            failure.output_tail.contains("AssertionError"),
            "{failure:#?}"
        );
        untouched(&repo);
    }

    #[tokio::test]
    async fn a_reproduction_must_fail_before_and_pass_after() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, commit) = repository(dir.path());
        let mut plan = plan(None);
        plan.reproduce = Some("python3 -c 'import rates; rates.to_eur(1)'".to_string());
        let right = [change(
            "rates.py",
            "def to_eur(amount):\n    return amount\n",
        )];
        let verification = verify(&repo, &commit, &right, &plan).await.unwrap();
        assert!(verification.passed(), "{verification:#?}");
        assert_eq!(verification.steps.len(), 3);
        // A "fix" of a reproduction that never failed proves nothing.
        plan.reproduce = Some("true".to_string());
        let verification = verify(&repo, &commit, &right, &plan).await.unwrap();
        assert_eq!(
            verification.failure().map(|s| s.name.as_str()),
            Some("reproduce without the fix")
        );
        untouched(&repo);
    }

    #[tokio::test]
    async fn a_required_test_must_fail_on_the_unfixed_code() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, commit) = repository(dir.path());
        let mut plan = plan(Some("python3 tests/test_new.py"));
        plan.require_test = true;
        let fixed = "def to_eur(amount):\n    return amount\n";
        let test = "import sys, os\nsys.path.insert(0, os.getcwd())\nimport rates\nassert rates.to_eur(3) == 3\n";
        let with_test = [change("rates.py", fixed), change("tests/test_new.py", test)];
        let verification = verify(&repo, &commit, &with_test, &plan).await.unwrap();
        assert!(verification.passed(), "{verification:#?}");
        let without_test = [change("rates.py", fixed)];
        let verification = verify(&repo, &commit, &without_test, &plan).await.unwrap();
        assert_eq!(
            verification.failure().and_then(|s| s.reason.as_deref()),
            Some("the fix adds or changes no test")
        );
        untouched(&repo);
    }

    #[tokio::test]
    async fn commands_see_no_agent_variables_and_a_timeout_kills_them() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, commit) = repository(dir.path());
        // SAFETY: set before any thread of this test reads the environment.
        unsafe { std::env::set_var("TAILFIX_TEST_SECRET_TOKEN", "hunter2") };
        let fix = [change(
            "rates.py",
            "def to_eur(amount):\n    return amount\n",
        )];
        let verification = verify(
            &repo,
            &commit,
            &fix,
            &plan(Some("env; test -z \"$TAILFIX_TEST_SECRET_TOKEN\"")),
        )
        .await
        .unwrap();
        assert!(verification.passed(), "{verification:#?}");
        assert!(!verification.steps[1].output_tail.contains("hunter2"));
        let mut slow = plan(Some("sleep 30 & sleep 30"));
        slow.limits.timeout = Duration::from_millis(500);
        let started = Instant::now();
        let verification = verify(&repo, &commit, &fix, &slow).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(20));
        let failure = verification.failure().expect("timed out");
        assert!(
            failure
                .reason
                .as_deref()
                .unwrap_or_default()
                .starts_with("timed out")
        );
        untouched(&repo);
    }

    /// A command cannot reach the agent's own listeners (its API, a database) where the kernel
    /// gives it a network namespace; where it cannot, the step says it ran with the network.
    #[tokio::test]
    async fn commands_run_without_the_network_where_the_kernel_allows() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, commit) = repository(dir.path());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connect = format!(
            "python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5)\""
        );
        let fix = [change(
            "rates.py",
            "def to_eur(amount):\n    return amount\n",
        )];
        let verification = verify(&repo, &commit, &fix, &plan(Some(&connect)))
            .await
            .unwrap();
        let step = &verification.steps[1];
        if sandbox() == Sandbox::None {
            assert!(
                step.reason
                    .as_deref()
                    .unwrap_or_default()
                    .contains("ran with the network")
            );
        } else {
            assert_eq!(step.status, Status::Failed, "{step:#?}");
        }
        untouched(&repo);
    }

    #[tokio::test]
    async fn a_file_without_a_checker_is_skipped_not_passed() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, commit) = repository(dir.path());
        let fix = [change("notes.txt", "hello\n")];
        let verification = verify(&repo, &commit, &fix, &plan(None)).await.unwrap();
        assert_eq!(verification.steps[0].status, Status::Skipped);
        assert!(verification.passed());
        untouched(&repo);
    }

    /// The code a model wrote (here, its test) cannot write outside the worktree where the
    /// kernel gives a mount namespace: not the operator's repository, not the agent's files.
    #[tokio::test]
    async fn commands_cannot_write_outside_their_worktree_where_the_kernel_allows() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, commit) = repository(dir.path());
        let target = repo.join("rates.py");
        let attack = format!(
            "echo ok > inside.txt && python3 -c \"open('{}', 'w').write('pwned')\"",
            target.display()
        );
        let fix = [change(
            "rates.py",
            "def to_eur(amount):\n    return amount\n",
        )];
        let verification = verify(&repo, &commit, &fix, &plan(Some(&attack)))
            .await
            .unwrap();
        let step = &verification.steps[1];
        if sandbox() == Sandbox::Full {
            assert_eq!(step.status, Status::Failed, "{step:#?}");
            assert!(
                step.output_tail.contains("Read-only file system"),
                "{step:#?}"
            );
            untouched(&repo);
        } else {
            assert!(
                step.reason
                    .as_deref()
                    .unwrap_or_default()
                    .contains("able to write outside"),
                "{step:#?}"
            );
            git(&repo, &["checkout", "--", "rates.py"]);
        }
    }

    /// A verification cut short by `kill -9` leaves a worktree; the next one removes it.
    #[tokio::test]
    async fn leftovers_of_a_killed_process_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, commit) = repository(dir.path());
        // A pid that is not running: the highest possible, beyond pid_max.
        let dead = std::env::temp_dir().join("tailfix-verify-4194305-0");
        let tree = dead.join("tree");
        git(
            &repo,
            &[
                "worktree",
                "add",
                "--detach",
                "--quiet",
                tree.to_str().unwrap(),
                &commit,
            ],
        );
        assert_eq!(git(&repo, &["worktree", "list"]).lines().count(), 2);
        drop(Checkout::existing(repo.clone(), commit));
        assert!(!dead.exists());
        untouched(&repo);
    }

    #[test]
    fn test_files_are_known_by_their_names() {
        for path in [
            "tests/test_rates.py",
            "pkg/rates_test.go",
            "src/a.test.js",
            "spec/cart_spec.rb",
            "src/test/java/shop/CartTest.java",
            "web/__tests__/x.js",
        ] {
            assert!(is_test_path(path), "{path}");
        }
        for path in ["rates.py", "src/contest.js", "latest/x.go"] {
            assert!(!is_test_path(path), "{path}");
        }
    }
}
