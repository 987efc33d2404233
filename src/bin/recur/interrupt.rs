//! Ctrl-C during training. The first asks the run to stop after the step in progress and save
//! its checkpoint; the second ends the process at once (the last complete checkpoint stays,
//! and a half-written temporary file is removed by the next write).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Exit status of a run stopped by Ctrl-C (128 + SIGINT), as shells report it.
pub const EXIT_INTERRUPTED: i32 = 130;

/// Whether Ctrl-C was pressed since [`Interrupt::install`].
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Installs the handler (once per process: `recur` runs one command).
    pub fn install() -> anyhow::Result<Self> {
        let flag = Arc::new(AtomicBool::new(false));
        let seen = flag.clone();
        // ctrlc runs this on its own thread, not in the signal handler: printing is safe.
        ctrlc::set_handler(move || {
            if seen.swap(true, Ordering::SeqCst) {
                eprintln!("\nerror: interrupted twice: stopped without saving");
                std::process::exit(EXIT_INTERRUPTED);
            }
            eprintln!("\ninterrupted: saving after this step (Ctrl-C again to stop at once)");
        })
        .map_err(|e| anyhow::anyhow!("cannot handle Ctrl-C: {e}"))?;
        Ok(Interrupt(flag))
    }

    /// Whether Ctrl-C was pressed.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The error a command returns when Ctrl-C stopped it after saving: `recur` prints it and
/// exits with [`EXIT_INTERRUPTED`].
#[derive(Debug)]
pub struct Interrupted(pub String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}
