//! The dataset: `make-dataset.py generate` (seeded, so the same bytes and mtimes on every
//! machine), written once into a cache folder and reused while it is intact, plus the
//! script's `modify` and `revert`.
//!
//! The cache folder holds `data/` (the tree), `mod-orig/` (the originals `modify` saves),
//! `make-dataset.py` (a copy of the generator used), `listing.txt` (path, mode, size and
//! mtime of every entry right after generation) and `stamp.json` (size, seed and the
//! generator's summary), written last. The tree is reused when the stamp has the same size
//! and seed, the generator is byte-identical, and the tree still matches the listing;
//! otherwise it is generated again. `modify` changes contents and mtimes, so the listing
//! catches a modified tree; a leftover `mod-orig/` (a run stopped between `modify` and
//! `revert`) is reverted first, and one without its `meta.json` (stopped inside `modify`)
//! makes the tree be generated again.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::child;
use super::tree;

/// The generator's seed: its default, written out so a changed default cannot change the data.
pub const SEED: u64 = 20_261_121;
/// Generating 1 GiB in pure Python takes a few minutes on one core.
const GENERATE_LIMIT: Duration = Duration::from_secs(3600);

/// What `stamp.json` records.
#[derive(Debug, Serialize, Deserialize)]
struct Stamp {
    size_mib: u64,
    seed: u64,
    /// The generator's printed summary: files and bytes per category and `total`.
    summary: serde_json::Value,
}

/// A generated dataset in its cache folder.
#[derive(Debug)]
pub struct Dataset {
    /// The tree every tool backs up.
    pub root: PathBuf,
    /// Size asked of the generator, MiB.
    pub size_mib: u64,
    /// Regular files in the tree.
    pub files: u64,
    /// Bytes in those files.
    pub bytes: u64,
    cache: PathBuf,
    script: PathBuf,
    logs: PathBuf,
    listing: String,
}

impl Dataset {
    /// The dataset of `size_mib` MiB in `cache`, generated with `script` unless an intact
    /// one is there. The generator's output goes to `logs`.
    pub fn prepare(
        cache: &Path,
        size_mib: u64,
        script: &Path,
        logs: &Path,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(cache).with_context(|| format!("create {}", cache.display()))?;
        let mut dataset = Self {
            root: cache.join("data"),
            size_mib,
            files: 0,
            bytes: 0,
            cache: cache.to_path_buf(),
            script: script.to_path_buf(),
            logs: logs.to_path_buf(),
            listing: String::new(),
        };
        let save = dataset.save();
        if save.join("meta.json").is_file() {
            eprintln!("dataset: reverting a leftover modify ({})", save.display());
            dataset.revert()?;
        } else if save.exists() {
            eprintln!(
                "dataset: {} has no meta.json (a modify was interrupted): generating again",
                save.display()
            );
            std::fs::remove_dir_all(&save).with_context(|| format!("remove {}", save.display()))?;
            let _ = std::fs::remove_file(dataset.stamp_path());
        }
        match dataset.reusable()? {
            Some(stamp) => {
                eprintln!("dataset: reusing {}", dataset.root.display());
                dataset.take_summary(&stamp)?;
            }
            None => dataset.generate()?,
        }
        Ok(dataset)
    }

    /// Fails unless the tree is as generated; reverts a leftover modify first.
    pub fn ensure_pristine(&self) -> anyhow::Result<()> {
        if self.save().exists() {
            self.revert()?;
        }
        let now = tree::listing_text(&tree::listing(&self.root)?);
        if now != self.listing {
            bail!(
                "{} differs from its listing at generation ({}): something else changed it; \
                 remove {} to generate it again",
                self.root.display(),
                self.cache.join("listing.txt").display(),
                self.stamp_path().display()
            );
        }
        Ok(())
    }

    /// `make-dataset.py modify`: about 1 % of the files of each category changed (half
    /// overwritten in place, half grown by 4 KiB), the same ones on every run. Returns the
    /// script's summary line.
    pub fn modify(&self) -> anyhow::Result<String> {
        let out = self.script_run("modify", &["--seed", &SEED.to_string()], true)?;
        Ok(out.trim().to_owned())
    }

    /// `make-dataset.py revert`: the originals back, contents and mtimes.
    pub fn revert(&self) -> anyhow::Result<()> {
        self.script_run("revert", &[], true).map(drop)
    }

    fn generate(&mut self) -> anyhow::Result<()> {
        eprintln!(
            "dataset: generating {} MiB (seed {SEED}) into {} ...",
            self.size_mib,
            self.root.display()
        );
        let _ = std::fs::remove_file(self.stamp_path());
        let size = self.size_mib.to_string();
        let seed = SEED.to_string();
        let out = self.script_run("generate", &["--size-mib", &size, "--seed", &seed], false)?;
        let summary: serde_json::Value = serde_json::from_str(&out)
            .with_context(|| format!("the generator's summary is not JSON: {out}"))?;
        let stamp = Stamp {
            size_mib: self.size_mib,
            seed: SEED,
            summary,
        };
        self.take_summary(&stamp)?;
        self.listing = tree::listing_text(&tree::listing(&self.root)?);
        let write = |name: &str, bytes: &[u8]| {
            let path = self.cache.join(name);
            std::fs::write(&path, bytes).with_context(|| format!("write {}", path.display()))
        };
        let script = std::fs::read(&self.script)
            .with_context(|| format!("read {}", self.script.display()))?;
        write("make-dataset.py", &script)?;
        write("listing.txt", self.listing.as_bytes())?;
        // Last: the stamp says the rest is complete.
        write(
            "stamp.json",
            &serde_json::to_vec_pretty(&stamp).expect("a stamp serialises"),
        )?;
        eprintln!("dataset: {} files, {} bytes", self.files, self.bytes);
        Ok(())
    }

    /// The stamp when the cached tree can be used as is.
    fn reusable(&mut self) -> anyhow::Result<Option<Stamp>> {
        let Ok(text) = std::fs::read(self.stamp_path()) else {
            return Ok(None);
        };
        let Ok(stamp) = serde_json::from_slice::<Stamp>(&text) else {
            return Ok(None);
        };
        if stamp.size_mib != self.size_mib || stamp.seed != SEED {
            eprintln!(
                "dataset: the cached one is {} MiB seed {}, not {} MiB seed {SEED}",
                stamp.size_mib, stamp.seed, self.size_mib
            );
            return Ok(None);
        }
        let used = std::fs::read(self.cache.join("make-dataset.py")).ok();
        let script = std::fs::read(&self.script)
            .with_context(|| format!("read {}", self.script.display()))?;
        if used.as_deref() != Some(script.as_slice()) {
            eprintln!("dataset: the cached one was made by another version of make-dataset.py");
            return Ok(None);
        }
        let Ok(listing) = std::fs::read_to_string(self.cache.join("listing.txt")) else {
            return Ok(None);
        };
        if !self.root.is_dir() || tree::listing_text(&tree::listing(&self.root)?) != listing {
            eprintln!("dataset: the cached tree no longer matches its listing");
            return Ok(None);
        }
        self.listing = listing;
        Ok(Some(stamp))
    }

    fn take_summary(&mut self, stamp: &Stamp) -> anyhow::Result<()> {
        let total = |key: &str| stamp.summary["total"][key].as_u64();
        match (total("files"), total("bytes")) {
            (Some(files), Some(bytes)) => {
                self.files = files;
                self.bytes = bytes;
                Ok(())
            }
            _ => bail!("no total in the generator's summary {}", stamp.summary),
        }
    }

    /// Runs `make-dataset.py <command> --root DATA [--save SAVE] extra...`; its stdout.
    fn script_run(&self, command: &str, extra: &[&str], with_save: bool) -> anyhow::Result<String> {
        let mut cmd = Command::new("python3");
        cmd.arg(&self.script)
            .arg(command)
            .arg("--root")
            .arg(&self.root);
        if with_save {
            cmd.arg("--save").arg(self.save());
        }
        cmd.args(extra);
        let label = format!("make-dataset-{command}");
        Ok(child::measure(&label, &cmd, &self.logs, GENERATE_LIMIT)?.stdout)
    }

    fn save(&self) -> PathBuf {
        self.cache.join("mod-orig")
    }

    fn stamp_path(&self) -> PathBuf {
        self.cache.join("stamp.json")
    }
}
