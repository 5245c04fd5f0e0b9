//! The argument-repair table: the runner splits `args:` on single spaces and keeps quotes.

use hooklib::repair_entry_point_args;

fn repair(args: &[&str]) -> Result<Vec<String>, hooklib::ArgsError> {
    repair_entry_point_args(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
}

#[test]
fn table() {
    let cases: &[(&[&str], &[&str])] = &[
        (&[], &[]),
        (&["plain"], &["plain"]),
        (&["--flag", "value"], &["--flag", "value"]),
        (&["\"Hello", "world\""], &["Hello world"]),
        (&["\"Mona", "the", "Octocat\""], &["Mona the Octocat"]),
        (&["'single", "quoted'"], &["single quoted"]),
        (&["'it'\\''s'"], &["it's"]),
        (&["'don'\\''t", "panic'"], &["don't panic"]),
        (&["a", "", "b"], &["a", "b"]),
        (&["\"\""], &[""]),
        (
            &["--save", "\"\"", "--appendonly", "no"],
            &["--save", "", "--appendonly", "no"],
        ),
        (&["$HOME", "${X}"], &["$HOME", "${X}"]),
        (&["escaped\\", "space"], &["escaped space"]),
    ];
    for (input, expected) in cases {
        let got = repair(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(&got, expected, "input {input:?}");
    }
}

#[test]
fn unbalanced_quotes_are_a_clear_error() {
    for input in [&["\"Hello", "world"][..], &["'oops"], &["a", "b\""]] {
        let e = repair(input).expect_err("must fail");
        let msg = e.to_string();
        assert!(msg.contains("unbalanced quotes"), "{msg}");
        assert!(!msg.contains('\n'));
    }
}
