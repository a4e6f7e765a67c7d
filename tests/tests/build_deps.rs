//! `scripts/build-deps.sh --check`, run as a process over library folders made here: it must
//! find exactly a libclang that bindgen can load, and not mistake `libclang-cpp` for it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script() -> PathBuf {
    // The run-time variable, so a test binary built in another clone sharing the target folder
    // checks this clone's script.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../scripts/build-deps.sh")
}

/// A folder holding empty files with these names.
fn lib_dir(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in names {
        std::fs::write(dir.path().join(name), b"").unwrap();
    }
    dir
}

fn check(dirs: &[&Path], libclang_path: Option<&Path>) -> Output {
    let joined = dirs
        .iter()
        .map(|d| d.to_str().unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let mut cmd = Command::new("bash");
    cmd.arg(script())
        .arg("--check")
        .env("HOTLEDGER_LIBCLANG_DIRS", joined)
        .env_remove("LIBCLANG_PATH");
    if let Some(path) = libclang_path {
        cmd.env("LIBCLANG_PATH", path);
    }
    cmd.output().unwrap()
}

fn found(out: &Output) -> bool {
    let stdout = String::from_utf8_lossy(&out.stdout);
    match out.status.code() {
        Some(0) => {
            assert!(stdout.contains("libclang ("), "{stdout}");
            true
        }
        Some(1) => {
            assert!(stdout.contains("missing: libclang"), "{stdout}");
            assert!(stdout.contains("libclang-dev"), "{stdout}");
            false
        }
        other => panic!(
            "exit {other:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[test]
fn libclang_cpp_alone_is_missing() {
    let dir = lib_dir(&["libclang-cpp.so.14", "libLLVM-14.so.1"]);
    assert!(!found(&check(&[dir.path()], None)));
}

#[test]
fn libclang_so_with_a_number_is_present() {
    let dir = lib_dir(&["libclang-cpp.so.14", "libclang.so.1"]);
    let out = check(&[dir.path()], None);
    assert!(found(&out));
    let expected = dir.path().join("libclang.so.1");
    assert!(String::from_utf8_lossy(&out.stdout).contains(expected.to_str().unwrap()));
}

#[test]
fn every_name_bindgen_loads_is_present() {
    for name in [
        "libclang.so",
        "libclang-14.so",
        "libclang-14.0.6.so.1",
        "libclang.so.18.1",
    ] {
        let dir = lib_dir(&[name]);
        assert!(found(&check(&[dir.path()], None)), "{name}");
    }
    for name in [
        "libclang-cpp.so",
        "libclangBasic.so.14",
        "libclang.a",
        "libclang.so.x",
    ] {
        let dir = lib_dir(&[name]);
        assert!(!found(&check(&[dir.path()], None)), "{name}");
    }
}

#[test]
fn every_folder_is_searched() {
    let empty = lib_dir(&[]);
    let with = lib_dir(&["libclang.so.1"]);
    assert!(found(&check(&[empty.path(), with.path()], None)));
}

#[test]
fn libclang_path_is_honoured() {
    let usual = lib_dir(&["libclang.so.1"]);
    let elsewhere = lib_dir(&["libclang-cpp.so.14"]);
    // LIBCLANG_PATH replaces the usual folders: a folder without libclang is missing even
    // though the usual folder has one.
    assert!(!found(&check(&[usual.path()], Some(elsewhere.path()))));
    let other = lib_dir(&["libclang-15.so.1"]);
    assert!(found(&check(&[elsewhere.path()], Some(other.path()))));
    // A path to the library file itself.
    let file = other.path().join("libclang-15.so.1");
    assert!(found(&check(&[elsewhere.path()], Some(&file))));
    let wrong = elsewhere.path().join("libclang-cpp.so.14");
    assert!(!found(&check(&[usual.path()], Some(&wrong))));
}
