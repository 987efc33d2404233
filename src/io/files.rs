//! Files on disk, read and written so that nothing is lost and nothing hangs.
//!
//! - Reads ([`read_file_limited`]) refuse what is not a regular file (a device such as
//!   `/dev/zero`, or a FIFO, has no end) and files over a size limit, before reading a byte.
//! - Writes are atomic: the bytes go to a temporary file in the target's folder, named
//!   `.<name>.<pid>.<n>.tmp`, which is synced and renamed over the target. A write first
//!   removes the temporary files of `<name>` whose writer is gone (a process killed during a
//!   write), so an interrupted write is cleaned up by the next one.
//! - [`write_all_atomic`] writes the results of one command together: every temporary file
//!   is written and synced before the first rename, so a failure while writing leaves every
//!   target as it was.
//! - [`CommandFiles`] checks a command's output paths before any work starts: the folder
//!   exists and is writable, the path is not a folder, and no output is also an input (or
//!   another output) of the same command.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::io_err;
use crate::error::{Error, Result};

/// Largest file `read_file` reads (model files, checkpoints, `.npy`): 8 GiB.
pub const MAX_FILE_BYTES: u64 = 8 << 30;

/// Where the liveness of a process cannot be checked, a temporary file untouched for this
/// long is taken to be left over from an interrupted write.
const STALE_AFTER: Duration = Duration::from_secs(600);

/// Numbers the temporary files of this process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Reads a whole regular file of at most `max_bytes` bytes. [`Error::Io`] if it cannot be
/// read; [`Error::Format`] if it is not a regular file (checked before it is opened, so a
/// FIFO does not block) or is larger than `max_bytes` (checked before reading, and again
/// while reading, for a file that grows).
pub fn read_file_limited(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let refuse = |reason: String| Error::Format {
        path: path.display().to_string(),
        reason,
    };
    let meta = fs::metadata(path).map_err(|e| io_err(path, e))?;
    if meta.is_dir() {
        return Err(refuse("is a folder, not a file".into()));
    }
    if !meta.is_file() {
        return Err(refuse(
            "is not a regular file (a device, FIFO or socket may have no end); give a file".into(),
        ));
    }
    let too_big = |size: u64| refuse(format!("is {size} bytes, over the limit of {max_bytes}"));
    if meta.len() > max_bytes {
        return Err(too_big(meta.len()));
    }
    let file = fs::File::open(path).map_err(|e| io_err(path, e))?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| io_err(path, e))?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

/// [`read_file_limited`] with [`MAX_FILE_BYTES`].
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    read_file_limited(path, MAX_FILE_BYTES)
}

/// Writes `bytes` to `path` atomically (see the module documentation): on any error,
/// whatever was at `path` is left as it was and no temporary file is left.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_all_atomic(&[(path, bytes)])
}

/// A temporary file written and synced, waiting for its rename.
struct Staged {
    tmp: PathBuf,
    target: PathBuf,
    /// The folder, synced after the renames (unix only).
    #[cfg_attr(not(unix), allow(dead_code))]
    dir: PathBuf,
}

/// Writes every `(path, bytes)` atomically and together: all temporary files are written and
/// synced first (on an error there, they are removed and no target changes), then renamed in
/// order. A rename fails only when the folder changed under the command (the paths were
/// checked before, see [`CommandFiles`]); the temporary files not renamed are then removed.
pub fn write_all_atomic(files: &[(&Path, &[u8])]) -> Result<()> {
    let mut staged: Vec<Staged> = Vec::with_capacity(files.len());
    for (path, bytes) in files {
        match stage(path, bytes) {
            Ok(s) => staged.push(s),
            Err(e) => {
                for s in &staged {
                    let _ = fs::remove_file(&s.tmp);
                }
                return Err(e);
            }
        }
    }
    for (i, s) in staged.iter().enumerate() {
        if let Err(e) = fs::rename(&s.tmp, &s.target) {
            for rest in &staged[i..] {
                let _ = fs::remove_file(&rest.tmp);
            }
            return Err(io_err(&s.target, e));
        }
    }
    // Make the renames durable (best effort; not possible on every platform).
    #[cfg(unix)]
    for s in &staged {
        if let Ok(d) = fs::File::open(&s.dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// The folder and file name of a path to write; [`Error::Io`] when it names no file.
fn split(path: &Path) -> Result<(PathBuf, OsString)> {
    let name = path.file_name().ok_or_else(|| {
        io_err(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
        )
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name.to_os_string()))
}

/// `.<name>.<pid>.<n>.tmp`.
fn temp_name(name: &OsStr, pid: u32, n: u64) -> OsString {
    let mut s = OsString::from(".");
    s.push(name);
    s.push(format!(".{pid}.{n}.tmp"));
    s
}

/// The writer's process id when `entry` is a temporary file of `name` ([`temp_name`]).
fn temp_owner(entry: &OsStr, name: &OsStr) -> Option<u32> {
    let entry = entry.to_str()?;
    let rest = entry
        .strip_prefix('.')?
        .strip_prefix(name.to_str()?)?
        .strip_prefix('.')?
        .strip_suffix(".tmp")?;
    let (pid, n) = rest.split_once('.')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Whether the process that wrote a temporary file is gone. On Linux, from `/proc`; where
/// that cannot be asked, a file untouched for [`STALE_AFTER`] counts as abandoned. A file of
/// this process is never stale: another thread may be writing it.
fn writer_is_gone(pid: u32, age: Option<Duration>) -> bool {
    if pid == std::process::id() {
        return false;
    }
    let proc_root = Path::new("/proc");
    if cfg!(target_os = "linux") && proc_root.join("self").exists() {
        return !proc_root.join(pid.to_string()).exists();
    }
    age.is_some_and(|a| a > STALE_AFTER)
}

/// Removes the temporary files of `name` in `dir` left by writers that are gone.
fn remove_stale_temps(dir: &Path, name: &OsStr) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = temp_owner(&entry.file_name(), name) else {
            continue;
        };
        let age = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok());
        if writer_is_gone(pid, age) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Creates a fresh temporary file beside `path` (`create_new`: never another writer's).
fn create_temp(dir: &Path, name: &OsStr, path: &Path) -> Result<(PathBuf, fs::File)> {
    let mut attempt = 0;
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(temp_name(name, std::process::id(), n));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1;
            }
            Err(e) => return Err(io_err(path, e)),
        }
    }
}

/// Writes and syncs the temporary file of `path`.
fn stage(path: &Path, bytes: &[u8]) -> Result<Staged> {
    let (dir, name) = split(path)?;
    remove_stale_temps(&dir, &name);
    let (tmp, mut file) = create_temp(&dir, &name, path)?;
    let filled = (|| -> std::io::Result<()> {
        // Keep the permissions of the file being replaced, if any (best effort).
        if let Ok(meta) = fs::metadata(path) {
            if meta.is_file() {
                let _ = file.set_permissions(meta.permissions());
            }
        }
        file.write_all(bytes)?;
        file.flush()?;
        file.sync_all()
    })();
    drop(file);
    if let Err(e) = filled {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(path, e));
    }
    Ok(Staged {
        tmp,
        target: path.to_path_buf(),
        dir,
    })
}

/// Whether `a` and `b` name the same file: the same device and inode when both exist (so
/// hard links and symbolic links count), else the same canonical folder and name.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(ma), Ok(mb)) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                ma.dev() == mb.dev() && ma.ino() == mb.ino()
            }
            #[cfg(not(unix))]
            {
                let _ = (ma, mb);
                match (fs::canonicalize(a), fs::canonicalize(b)) {
                    (Ok(x), Ok(y)) => x == y,
                    _ => false,
                }
            }
        }
        (Err(_), Err(_)) => match (normalized(a), normalized(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        // One exists and the other does not.
        _ => false,
    }
}

/// The canonical folder of `p` joined with its file name.
fn normalized(p: &Path) -> Option<PathBuf> {
    let (dir, name) = split(p).ok()?;
    Some(fs::canonicalize(dir).ok()?.join(name))
}

/// The files one command reads and writes, checked together before any work starts; see
/// [`CommandFiles::check`].
#[derive(Clone, Debug, Default)]
pub struct CommandFiles {
    /// (flag, path, the output flag allowed to replace it).
    inputs: Vec<(String, PathBuf, Option<String>)>,
    /// (flag, path).
    outputs: Vec<(String, PathBuf)>,
}

impl CommandFiles {
    /// No files yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A file the command reads, under the flag that named it (`--data`).
    pub fn input(&mut self, flag: &str, path: &Path) -> &mut Self {
        self.inputs.push((flag.into(), path.to_path_buf(), None));
        self
    }

    /// A file the command reads whole before it writes `by` (an output flag), which may
    /// therefore replace it (`--resume X --checkpoint X` continues a model in place).
    pub fn input_replaced_by(&mut self, flag: &str, path: &Path, by: &str) -> &mut Self {
        self.inputs
            .push((flag.into(), path.to_path_buf(), Some(by.into())));
        self
    }

    /// A file the command writes, under the flag that named it (`--checkpoint`).
    pub fn output(&mut self, flag: &str, path: &Path) -> &mut Self {
        self.outputs.push((flag.into(), path.to_path_buf()));
        self
    }

    /// [`Error::OutputPath`] for the first output that cannot be written: its name is not a
    /// file name, its folder is missing or not writable, it is a folder or not a regular
    /// file, or it is also an input (other than one it may replace) or another output.
    pub fn check(&self) -> Result<()> {
        for (i, (flag, path)) in self.outputs.iter().enumerate() {
            let fail = |reason: String| Error::OutputPath {
                flag: flag.clone(),
                path: path.display().to_string(),
                reason,
            };
            check_writable(path).map_err(fail)?;
            for (in_flag, in_path, by) in &self.inputs {
                if by.as_deref() != Some(flag.as_str()) && same_file(path, in_path) {
                    return Err(fail(format!(
                        "is also the {in_flag} file; writing it would destroy that input"
                    )));
                }
            }
            for (other_flag, other) in &self.outputs[..i] {
                if same_file(path, other) {
                    return Err(fail(format!("is also the {other_flag} file")));
                }
            }
        }
        Ok(())
    }
}

/// Why `path` cannot be written, if it cannot.
fn check_writable(path: &Path) -> std::result::Result<(), String> {
    let (dir, name) = split(path).map_err(|_| "is not a file name".to_string())?;
    if path
        .as_os_str()
        .to_string_lossy()
        .ends_with(std::path::MAIN_SEPARATOR)
        || name == ".."
    {
        return Err("is not a file name".into());
    }
    match fs::metadata(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("the folder {} does not exist", dir.display()))
        }
        Err(e) => return Err(format!("cannot access the folder {}: {e}", dir.display())),
        Ok(m) if !m.is_dir() => return Err(format!("{} is not a folder", dir.display())),
        Ok(_) => {}
    }
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => return Err("is a folder".into()),
        Ok(m) if !m.is_file() => {
            return Err("is not a regular file (a device or FIFO); give a file name".into())
        }
        _ => {}
    }
    // Creating (and removing) a temporary file is the only portable test of "writable".
    let (tmp, file) = create_temp(&dir, &name, path).map_err(|e| match e {
        Error::Io { source, .. } => format!("cannot write in {}: {source}", dir.display()),
        other => other.to_string(),
    })?;
    drop(file);
    let _ = fs::remove_file(tmp);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("recur-files-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn io_temp_names_parse_back() {
        let name = OsStr::new("c.safetensors");
        let t = temp_name(name, 42, 7);
        assert_eq!(t, OsStr::new(".c.safetensors.42.7.tmp"));
        assert_eq!(temp_owner(&t, name), Some(42));
        assert_eq!(temp_owner(&t, OsStr::new("c")), None);
        assert_eq!(temp_owner(OsStr::new(".c.safetensors.x.7.tmp"), name), None);
        assert_eq!(temp_owner(OsStr::new("c.safetensors"), name), None);
    }

    #[test]
    fn io_write_cleans_temps_of_dead_writers_only() {
        let dir = scratch("stale");
        let p = dir.join("x.bin");
        // pid 0 is never a user process: a writer that is gone.
        let dead = dir.join(temp_name(OsStr::new("x.bin"), 0, 3));
        fs::write(&dead, vec![1u8; 4096]).unwrap();
        // Our own temp (another thread writing) and another file's temp stay.
        let mine = dir.join(temp_name(OsStr::new("x.bin"), std::process::id(), u64::MAX));
        fs::write(&mine, b"in progress").unwrap();
        let other = dir.join(temp_name(OsStr::new("y.bin"), 0, 3));
        fs::write(&other, b"y").unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        if cfg!(target_os = "linux") {
            assert!(!dead.exists(), "a dead writer's temp file survived");
        }
        assert!(mine.exists() && other.exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn io_write_all_atomic_is_all_or_nothing() {
        let dir = scratch("all");
        let (a, b) = (dir.join("a.bin"), dir.join("b.bin"));
        write_all_atomic(&[(&a, b"a1"), (&b, b"b1")]).unwrap();
        // A target in a missing folder fails while staging, before any rename: the first
        // target keeps its old bytes and its staged temp file is removed.
        let missing = dir.join("nope").join("c.bin");
        assert!(write_all_atomic(&[(&a, b"a2"), (&missing, b"c")]).is_err());
        assert_eq!(fs::read(&a).unwrap(), b"a1");
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            2,
            "a temp file was left"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn io_read_refuses_devices_and_big_files() {
        let dir = scratch("read");
        let p = dir.join("t.txt");
        fs::write(&p, b"hello").unwrap();
        assert_eq!(read_file_limited(&p, 5).unwrap(), b"hello");
        assert!(
            matches!(read_file_limited(&p, 4), Err(Error::Format { reason, .. }) if reason.contains("over the limit"))
        );
        assert!(matches!(
            read_file_limited(&dir, 100),
            Err(Error::Format { .. })
        ));
        if Path::new("/dev/zero").exists() {
            assert!(
                matches!(read_file_limited(Path::new("/dev/zero"), 100), Err(Error::Format { reason, .. }) if reason.contains("regular file"))
            );
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn io_command_files_check_outputs_before_work() {
        let dir = scratch("plan");
        let data = dir.join("data.txt");
        fs::write(&data, b"text").unwrap();
        let ck = dir.join("c.safetensors");
        let ok = CommandFiles::new()
            .input("--data", &data)
            .output("--checkpoint", &ck)
            .check();
        assert!(ok.is_ok(), "{ok:?}");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "the probe was left");
        let reason = |c: &CommandFiles| match c.check() {
            Err(Error::OutputPath { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        let r = reason(
            CommandFiles::new()
                .input("--data", &data)
                .output("--checkpoint", &data),
        );
        assert!(r.contains("--data"), "{r}");
        // The same file through another spelling of the path.
        let dotted = dir.join(".").join("data.txt");
        assert!(reason(
            CommandFiles::new()
                .input("--data", &data)
                .output("--plot", &dotted)
        )
        .contains("--data"));
        let r = reason(CommandFiles::new().output("--checkpoint", &dir.join("no/c.st")));
        assert!(r.contains("does not exist"), "{r}");
        let r = reason(CommandFiles::new().output("--checkpoint", &dir));
        assert!(r.contains("folder"), "{r}");
        let r = reason(
            CommandFiles::new()
                .output("--output", &dir.join("y.npy"))
                .output("--hn", &dir.join("y.npy")),
        );
        assert!(r.contains("--output"), "{r}");
        // Resuming in place is allowed, but only into the output named.
        let resume = CommandFiles::new()
            .input_replaced_by("--resume", &data, "--checkpoint")
            .output("--checkpoint", &data)
            .check();
        assert!(resume.is_ok(), "{resume:?}");
        assert!(CommandFiles::new()
            .input_replaced_by("--resume", &data, "--checkpoint")
            .output("--plot", &data)
            .check()
            .is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
