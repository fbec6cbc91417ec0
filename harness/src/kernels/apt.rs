//! A private apt configuration per suite: its own sources list, lists,
//! cache and status, so the machine's apt setup is never changed. The
//! mirror is the one the machine's own apt sources use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub const SYSTEM_SOURCES: &[&str] = &["/etc/apt/sources.list", "/etc/apt/sources.list.d"];
pub const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// A source entry as read from the machine's apt configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub uri: String,
    pub suites: Vec<String>,
}

/// Parses deb822 `.sources` text (`Types:`, `URIs:`, `Suites:` stanzas).
pub fn parse_deb822_sources(text: &str) -> Vec<Source> {
    parse_deb822(text)
        .into_iter()
        .filter(|st| {
            st.get("Types")
                .is_some_and(|t| t.split_whitespace().any(|t| t == "deb"))
        })
        .flat_map(|st| {
            let suites: Vec<String> = st
                .get("Suites")
                .map(|s| s.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default();
            st.get("URIs")
                .map(|u| u.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .map(move |uri| Source {
                    uri,
                    suites: suites.clone(),
                })
        })
        .collect()
}

/// Parses one-line `sources.list` text (`deb [opts] URI SUITE COMPONENTS`).
pub fn parse_one_line_sources(text: &str) -> Vec<Source> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| l.starts_with("deb "))
        .filter_map(|l| {
            let mut rest = l["deb ".len()..].trim();
            if rest.starts_with('[') {
                rest = rest.split_once(']')?.1.trim();
            }
            let mut words = rest.split_whitespace();
            let uri = words.next()?.to_string();
            let suite = words.next()?.to_string();
            Some(Source {
                uri,
                suites: vec![suite],
            })
        })
        .collect()
}

/// The main archive's mirror: the first source carrying a plain release
/// suite (not `-security`, `-updates` or `-backports`).
pub fn pick_mirror(sources: &[Source]) -> Option<String> {
    sources
        .iter()
        .find(|s| {
            s.suites
                .iter()
                .any(|suite| !suite.contains('-') && !suite.contains('/'))
        })
        .map(|s| s.uri.trim_end_matches('/').to_string())
}

/// Reads the machine's apt sources and picks the mirror.
pub fn system_mirror() -> Result<String> {
    let mut sources = Vec::new();
    let list = Path::new(SYSTEM_SOURCES[0]);
    if let Ok(text) = std::fs::read_to_string(list) {
        sources.extend(parse_one_line_sources(&text));
    }
    if let Ok(dir) = std::fs::read_dir(SYSTEM_SOURCES[1]) {
        let mut paths: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            let Ok(text) = std::fs::read_to_string(&p) else {
                continue;
            };
            match p.extension().and_then(|e| e.to_str()) {
                Some("sources") => sources.extend(parse_deb822_sources(&text)),
                Some("list") => sources.extend(parse_one_line_sources(&text)),
                _ => {}
            }
        }
    }
    pick_mirror(&sources).with_context(|| {
        format!(
            "no Debian mirror in the machine's apt sources ({}): add the Debian archive to them",
            SYSTEM_SOURCES.join(", ")
        )
    })
}

/// Parses deb822 stanzas (apt-cache show output, .sources files).
pub fn parse_deb822(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let mut cur: BTreeMap<String, String> = BTreeMap::new();
    let mut last_key: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            last_key = None;
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(k) = &last_key {
                if let Some(v) = cur.get_mut(k) {
                    v.push('\n');
                    v.push_str(line.trim());
                }
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            cur.insert(k.trim().to_string(), v.trim().to_string());
            last_key = Some(k.trim().to_string());
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// One binary package version as the apt index describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PackageInfo {
    pub package: String,
    pub version: String,
    pub architecture: String,
    pub depends: Vec<String>,
    pub filename: String,
    pub sha256: String,
    pub size: u64,
}

impl PackageInfo {
    pub fn from_stanza(st: &BTreeMap<String, String>) -> Result<Self> {
        let field = |k: &str| {
            st.get(k)
                .cloned()
                .with_context(|| format!("apt index entry without {k}"))
        };
        Ok(PackageInfo {
            package: field("Package")?,
            version: field("Version")?,
            architecture: field("Architecture")?,
            depends: st
                .get("Depends")
                .map(|d| parse_depends(d))
                .unwrap_or_default(),
            filename: field("Filename")?,
            sha256: field("SHA256")?,
            size: field("Size")?.parse().context("apt index Size")?,
        })
    }

    /// The `.deb` file name apt-get download writes (`:` in versions becomes `%3a`).
    pub fn deb_file_name(&self) -> String {
        format!(
            "{}_{}_{}.deb",
            self.package,
            self.version.replace(':', "%3a"),
            self.architecture
        )
    }
}

/// `a (>= 1), b | c, d:any` → package names of the first alternative of each.
pub fn parse_depends(text: &str) -> Vec<String> {
    text.split(',')
        .filter_map(|dep| {
            let first = dep.split('|').next()?.trim();
            let name = first.split_whitespace().next()?;
            Some(name.split(':').next().unwrap_or(name).to_string())
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// A private apt setup for one suite, under `dir`.
#[derive(Debug, Clone)]
pub struct PrivateApt {
    pub dir: PathBuf,
    pub suite: String,
}

impl PrivateApt {
    pub fn new(cache_root: &Path, suite: &str) -> Self {
        PrivateApt {
            dir: cache_root.join("apt").join(suite),
            suite: suite.to_string(),
        }
    }

    /// The sources list line of this suite.
    pub fn sources_line(mirror: &str, suite: &str) -> String {
        format!("deb [arch=amd64,arm64 signed-by={KEYRING}] {mirror} {suite} main\n")
    }

    /// `-o` options that point apt at this private setup.
    pub fn options(&self) -> Vec<String> {
        let d = |p: &str| self.dir.join(p).display().to_string();
        vec![
            format!("Dir::Etc::SourceList={}", d("sources.list")),
            format!("Dir::Etc::SourceParts={}", d("sources.list.d")),
            format!("Dir::Etc::Preferences={}", d("preferences")),
            format!("Dir::Etc::PreferencesParts={}", d("preferences.d")),
            format!("Dir::State={}", d("state")),
            format!("Dir::State::Lists={}", d("state/lists")),
            format!("Dir::State::status={}", d("state/status")),
            format!("Dir::Cache={}", d("cache")),
            "APT::Architectures::=amd64".to_string(),
            "APT::Architectures::=arm64".to_string(),
            "Acquire::Languages=none".to_string(),
            // A rolling suite's Release file expires within days; a mirror
            // that has not synced since (or a machine whose clock is ahead
            // of it) refuses the whole suite. Each locked package is
            // checked against its sha256 in the lock file, so an old index
            // cannot slip in other bytes; it can only offer older versions
            // to `--relock`, which records what it chose.
            "Acquire::Check-Valid-Until=false".to_string(),
            "Debug::NoLocking=1".to_string(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect()
    }

    /// Writes the configuration files (idempotent).
    pub fn write_config(&self, mirror: &str) -> Result<()> {
        for sub in [
            "sources.list.d",
            "preferences.d",
            "state/lists/partial",
            "cache/archives/partial",
        ] {
            std::fs::create_dir_all(self.dir.join(sub))
                .with_context(|| format!("creating {}", self.dir.join(sub).display()))?;
        }
        std::fs::write(
            self.dir.join("sources.list"),
            Self::sources_line(mirror, &self.suite),
        )?;
        let status = self.dir.join("state/status");
        if !status.exists() {
            std::fs::write(&status, "")?;
        }
        Ok(())
    }

    /// Whether the index was fetched less than `max_age` ago.
    pub fn index_fresh(&self, max_age: std::time::Duration) -> bool {
        let lists = self.dir.join("state/lists");
        std::fs::read_dir(&lists)
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("_Packages"))
            .filter_map(|e| e.metadata().ok()?.modified().ok())
            .any(|m| m.elapsed().is_ok_and(|age| age < max_age))
    }

    /// Whether the index still offers this exact version.
    pub fn has_version(&self, package: &str, debian_arch: &str, version: &str) -> Result<bool> {
        let out = crate::process::commands::apt_cache(
            self.options(),
            [
                "show".to_string(),
                format!("{package}:{debian_arch}={version}"),
            ],
        )?
        .output()
        .context("running apt-cache")?;
        Ok(out.status.success()
            && parse_deb822(&String::from_utf8_lossy(&out.stdout))
                .iter()
                .any(|st| st.get("Version").is_some_and(|v| v == version)))
    }

    /// `apt-cache show` of one package for one Debian arch, newest first.
    pub fn show(&self, package: &str, debian_arch: &str) -> Result<Vec<PackageInfo>> {
        let out = crate::process::commands::apt_cache(
            self.options(),
            [
                "show".to_string(),
                "--no-all-versions".to_string(),
                format!("{package}:{debian_arch}"),
            ],
        )?
        .output()
        .context("running apt-cache")?;
        if !out.status.success() {
            bail!(
                "{package}:{debian_arch} is not in {}: {}",
                self.suite,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        parse_deb822(&text)
            .iter()
            .map(PackageInfo::from_stanza)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_from_deb822() {
        let text = "Types: deb\n# a comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n\
                    Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n";
        let sources = parse_deb822_sources(text);
        assert_eq!(sources.len(), 2);
        assert_eq!(
            pick_mirror(&sources).as_deref(),
            Some("http://mirror.example/debian")
        );
    }

    #[test]
    fn mirror_from_one_line() {
        let cases = [
            (
                "deb http://m.example/debian/ bookworm main\n",
                Some("http://m.example/debian"),
            ),
            (
                "deb [signed-by=/k.gpg] http://m.example/d bookworm main contrib\n",
                Some("http://m.example/d"),
            ),
            ("deb http://s.example/ bookworm-security main\n", None),
            (
                "# deb http://x/ bookworm main\ndeb-src http://y/ bookworm main\n",
                None,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                pick_mirror(&parse_one_line_sources(text)).as_deref(),
                want,
                "{text}"
            );
        }
    }

    #[test]
    fn depends() {
        let cases = [
            ("linux-image-6.1.0-47-amd64 (= 6.1.170-1)", vec!["linux-image-6.1.0-47-amd64"]),
            ("kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool",
             vec!["kmod", "linux-base", "initramfs-tools"]),
            ("libc6:any", vec!["libc6"]),
        ];
        for (text, want) in cases {
            assert_eq!(parse_depends(text), want);
        }
    }

    #[test]
    fn package_stanza() {
        let text = "Package: linux-image-amd64\nSource: linux-signed-amd64 (6.1.170+1)\nVersion: 6.1.170-1\n\
                    Architecture: amd64\nDepends: linux-image-6.1.0-47-amd64 (= 6.1.170-1)\n\
                    Description: Linux for\n 64-bit PCs\nFilename: pool/main/l/x.deb\nSize: 1234\nSHA256: abcd\n";
        let st = parse_deb822(text);
        let p = PackageInfo::from_stanza(&st[0]).unwrap();
        assert_eq!(p.depends, ["linux-image-6.1.0-47-amd64"]);
        assert_eq!(p.deb_file_name(), "linux-image-amd64_6.1.170-1_amd64.deb");
        assert_eq!(st[0]["Description"], "Linux for\n64-bit PCs");
        let missing = parse_deb822("Package: x\n");
        assert!(PackageInfo::from_stanza(&missing[0])
            .unwrap_err()
            .to_string()
            .contains("Version"));
    }
}
