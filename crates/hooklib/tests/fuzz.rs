//! Arbitrary bytes on stdin never panic the parser.

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = hooklib::parse_input(&bytes);
    }

    #[test]
    fn arbitrary_json_shapes_never_panic(
        command in prop_oneof![
            Just("prepare_job".to_owned()),
            Just("run_script_step".to_owned()),
            Just("run_container_step".to_owned()),
            Just("cleanup_job".to_owned()),
            "[a-z_]{0,20}",
        ],
        args in "[\\[\\]{}\",:0-9a-zA-Z ]{0,64}",
    ) {
        let text = format!(r#"{{"command":"{command}","responseFile":"/r","args":{args},"state":null}}"#);
        let _ = hooklib::parse_input(text.as_bytes());
    }
}
