//! A small real program with a real bug, in a temporary git repository: `shop/cart.py`
//! divides by zero when the cart's parts cancel out. Running it writes a real Python trace
//! (through `logging.exception`, with secrets planted in the log line) to a log file.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub const CART_PY: &str = "\"\"\"Cart arithmetic.\"\"\"


def discount(total, parts):
    return total / parts


def checkout(cart):
    return discount(sum(cart), len(cart) - len(cart))
";

pub const MAIN_PY: &str = "import logging
import sys

from shop.cart import checkout

logging.basicConfig(format=\"%(asctime)s %(levelname)s %(name)s: %(message)s\")
log = logging.getLogger(\"shop\")

try:
    print(checkout([int(arg) for arg in sys.argv[1:]] or [3, 4]))
except ZeroDivisionError:
    log.exception(
        \"checkout failed for ops@example.com via postgres://admin:hunter2@db.internal:5432/shop \"
        \"with key AKIAIOSFODNN7EXAMPLE and session \"
        \"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U\"
    )
    sys.exit(1)
";

/// Secrets planted in the crash's log line; none may reach a model.
pub const PLANTED_SECRETS: &[&str] = &[
    "hunter2",
    "AKIAIOSFODNN7EXAMPLE",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "ops@example.com",
];

/// The fix a model would propose.
pub fn fix_json() -> serde_json::Value {
    serde_json::json!({
        "summary": "Return no discount when the cart's parts cancel out instead of dividing by zero.",
        "root_cause": "checkout passes len(cart) - len(cart), always 0, as the divisor of discount.",
        "confidence": 0.85,
        "edits": [{
            "path": "shop/cart.py",
            "old": "    return total / parts",
            "new": "    return total / parts if parts else 0"
        }]
    })
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.test")
        .env("GIT_COMMITTER_NAME", "Dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.test")
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Creates the repository under `parent/shop-repo` with one commit on `main`.
pub fn create(parent: &Path) -> PathBuf {
    let repo = parent.join("shop-repo");
    std::fs::create_dir_all(repo.join("shop")).unwrap();
    std::fs::write(repo.join("shop/__init__.py"), "").unwrap();
    std::fs::write(repo.join("shop/cart.py"), CART_PY).unwrap();
    std::fs::write(repo.join("main.py"), MAIN_PY).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "shop: first version"]);
    repo
}

/// Runs the program in `repo` and appends what it writes (the crash) to `log`; returns
/// whether it exited successfully.
pub fn run(repo: &Path, log: &Path, args: &[&str]) -> bool {
    let output = Command::new("python3")
        .arg("main.py")
        .args(args)
        .current_dir(repo)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run python3");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    use std::io::Write;
    file.write_all(&output.stderr).unwrap();
    output.status.success()
}
