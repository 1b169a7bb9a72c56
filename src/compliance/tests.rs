use super::*;
use crate::settings::{ProgramConfig, Secret, TenantConfig};

fn config(dir: &Path) -> Config {
    let mut c: Config = toml::from_str("").unwrap();
    c.data_dir = dir.to_owned();
    c.tenants = vec![TenantConfig {
        name: "t".into(),
        token: Secret::new("0123456789"),
        senders: vec!["12345".into()],
        default_validity: std::time::Duration::from_secs(60),
        programs: vec![ProgramConfig {
            name: "p".into(),
            senders: vec!["12345".into()],
            help_text: "help".into(),
            opt_out_text: "bye".into(),
            opt_in_text: "hi".into(),
            stop_covers: StopCovers::Program,
            keywords: Default::default(),
        }],
        ..TenantConfig::default()
    }];
    c
}

fn n(s: &str) -> Msisdn {
    Msisdn::parse(s).unwrap()
}

#[tokio::test]
async fn opt_outs_and_their_audit_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let sc = Sender::parse("12345").unwrap();
    {
        let c = Compliance::open(&cfg).unwrap();
        let r = c
            .inbound(n("+14155550100"), "12345", "stop", "smsc", "sms")
            .await
            .unwrap();
        assert!(
            matches!(r, Inbound::OptedOut { reply: Some(_), .. }),
            "{r:?}"
        );
        let again = c
            .inbound(n("+14155550100"), "12345", "STOP", "smsc", "sms")
            .await
            .unwrap();
        assert!(
            matches!(again, Inbound::OptedOut { reply: None, .. }),
            "one confirmation only"
        );
        assert!(c.check("t", &sc, n("+14155550100")).is_some());
    }
    let c = Compliance::open(&cfg).unwrap();
    assert_eq!(
        c.check("t", &sc, n("+14155550100")).as_deref(),
        Some("program:t:p")
    );
    let audit = c.audit(n("+14155550100"));
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0].keyword, "STOP");
    assert_eq!(audit[0].carrier, "smsc");
    // Another tenant's traffic, or a sender outside the program, is not affected.
    assert!(
        c.check("t", &Sender::parse("55555").unwrap(), n("+14155550100"))
            .is_none()
    );
}

#[tokio::test]
async fn an_uncommitted_import_applies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    {
        // An import interrupted after its bulk records, before its commit.
        let (j, _) = Journal::open(&dir.path().join("optouts"), &JournalConfig::default()).unwrap();
        j.opt_bulk(&OptBulk {
            import_id: 7,
            scope: GLOBAL.into(),
            numbers: vec![14155550111],
        })
        .wait()
        .await
        .unwrap();
    }
    let c = Compliance::open(&cfg).unwrap();
    assert_eq!(c.count(), 0);
    let report = c
        .import(
            GLOBAL,
            &b"+14155550111\nnot-a-number\n+14155550112\n"[..],
            "f.csv",
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(report.bad.len(), 1);
    assert_eq!(report.bad[0].line, 2);
    assert_eq!(c.count(), 2);
    drop(c);
    let c = Compliance::open(&cfg).unwrap();
    assert_eq!(c.count(), 2);
    assert_eq!(c.imports().len(), 1);
    assert!(matches!(
        c.import("nope", &b""[..], "x", |_| {}).await,
        Err(ComplianceError::UnknownScope(_))
    ));
}

#[tokio::test]
async fn keywords_route_to_the_right_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let c = Compliance::open(&config(dir.path())).unwrap();
    let h = n("+14155550100");
    assert!(matches!(
        c.inbound(h, "12345", "HELP", "s", "sms").await.unwrap(),
        Inbound::Help { .. }
    ));
    assert!(matches!(
        c.inbound(h, "12345", "Stop please", "s", "sms")
            .await
            .unwrap(),
        Inbound::Forward { .. }
    ));
    assert!(matches!(
        c.inbound(h, "99999", "STOP", "s", "sms").await.unwrap(),
        Inbound::NoTenant
    ));
    assert!(matches!(
        c.inbound(h, "12345", "", "s", "sms").await.unwrap(),
        Inbound::Forward { .. }
    ));
    let long = "x".repeat(5000);
    assert!(matches!(
        c.inbound(h, "12345", &long, "s", "sms").await.unwrap(),
        Inbound::Forward { .. }
    ));
    let Inbound::OptedOut { scope, .. } =
        c.inbound(h, "12345", "STOPALL", "s", "sms").await.unwrap()
    else {
        panic!()
    };
    assert_eq!(scope, "tenant:t");
    let Inbound::OptedIn { reply, .. } = c.inbound(h, "12345", "start", "s", "sms").await.unwrap()
    else {
        panic!()
    };
    assert!(reply.is_some());
    assert!(
        c.check("t", &Sender::parse("12345").unwrap(), h).is_none(),
        "START lifts STOPALL too"
    );
}

/// A tenant renamed by a reload (t removed, u added with t's sender and a
/// program on it): STOPs to the sender are u's from then on, while t's
/// messages still queued are held to t's program opt-outs.
#[tokio::test]
async fn a_sender_taken_over_by_a_tenant_added_keeps_the_old_tenants_opt_outs() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    let c = Compliance::open(&cfg).unwrap();
    let (h, sender) = (n("+14155550100"), Sender::parse("12345").unwrap());
    c.inbound(h, "12345", "STOP", "s", "sms").await.unwrap();
    assert_eq!(c.check("t", &sender, h).as_deref(), Some("program:t:p"));

    let mut u = cfg.tenants[0].clone();
    u.name = "u".into();
    c.add_tenants(std::slice::from_ref(&u)).unwrap();
    // As the reload passes them: the removed tenant first, then those in
    // force.
    cfg.tenants.push(u);
    c.set_tenant_senders(&cfg);
    assert_eq!(c.owner("12345").as_deref(), Some("u"));
    assert_eq!(
        c.check("t", &sender, h).as_deref(),
        Some("program:t:p"),
        "t's queued messages keep t's program opt-outs"
    );
    assert_eq!(c.check("u", &sender, h), None);
    let h2 = n("+14155550101");
    let Inbound::OptedOut { tenant, scope, .. } =
        c.inbound(h2, "12345", "STOP", "s", "sms").await.unwrap()
    else {
        panic!("a STOP")
    };
    assert_eq!((&*tenant, scope.as_str()), ("u", "program:u:p"));
    assert_eq!(c.check("u", &sender, h2).as_deref(), Some("program:u:p"));
}
