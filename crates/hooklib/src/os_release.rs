//! The one rule for "is this job container Alpine?" (the runner picks the musl build of node
//! for JavaScript actions when `isAlpine` is true).

/// Whether an `/etc/os-release` text says Alpine: `ID=alpine`, or `ID_LIKE` naming `alpine`
/// (postmarketOS and other Alpine derivatives use musl too). Quotes and case are ignored.
///
/// ```
/// assert!(hooklib::is_alpine("NAME=\"Alpine Linux\"\nID=alpine\n"));
/// assert!(hooklib::is_alpine("ID=\"postmarketos\"\nID_LIKE=\"alpine\"\n"));
/// assert!(!hooklib::is_alpine("ID=ubuntu\nID_LIKE=debian\n"));
/// ```
pub fn is_alpine(os_release: &str) -> bool {
    os_release.lines().any(|l| {
        let Some((k, v)) = l.split_once('=') else {
            return false;
        };
        let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
        match k.trim() {
            "ID" => v.eq_ignore_ascii_case("alpine"),
            "ID_LIKE" => v
                .split_whitespace()
                .any(|w| w.eq_ignore_ascii_case("alpine")),
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::is_alpine;

    #[test]
    fn alpine_and_its_derivatives() {
        assert!(is_alpine(
            "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.0\n"
        ));
        assert!(is_alpine("ID='Alpine'\n"));
        assert!(is_alpine("ID=\"postmarketos\"\nID_LIKE=\"alpine\"\n"));
        assert!(is_alpine("ID=x\nID_LIKE=\"foo alpine\"\n"));
    }

    #[test]
    fn others_are_not() {
        assert!(!is_alpine("ID=debian\nID_LIKE=\n"));
        assert!(!is_alpine(
            "ID=ubuntu\nID_LIKE=debian\nPRETTY_NAME=\"not alpine\"\n"
        ));
        assert!(!is_alpine("VARIANT_ID=alpine\nID=wolfi\n"));
        assert!(!is_alpine(""));
        assert!(!is_alpine("garbage without equals\n"));
    }
}
