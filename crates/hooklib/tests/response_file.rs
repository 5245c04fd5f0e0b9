//! The response file: one document, written atomically, errors that name the path.

use hooklib::{StateResponse, write_response};
use serde_json::json;

#[test]
fn replaces_the_runners_empty_file_with_one_document() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("response.json");
    std::fs::write(&path, "").unwrap();
    write_response(
        &path,
        &StateResponse {
            state: json!({"jobPod": "p"}),
        },
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        r#"{"state":{"jobPod":"p"}}"#
    );
    // no temporary files left behind
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from("response.json")]);
}

#[test]
fn a_missing_directory_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/response.json");
    let e = write_response(&path, &json!({})).unwrap_err().to_string();
    assert!(e.contains(&path.display().to_string()), "{e}");
    assert!(e.contains("does not exist"), "{e}");
    assert!(!path.exists());
}
