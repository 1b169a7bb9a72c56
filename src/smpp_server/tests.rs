use super::*;

fn accounts() -> Accounts {
    Accounts::new([
        Account {
            tenant: Arc::from("acme"),
            system_id: "acme".into(),
            password: Secret::new("pw-acme"),
        },
        Account {
            tenant: Arc::from("globex"),
            system_id: "globex".into(),
            password: Secret::new("pw-glob"),
        },
    ])
}

#[test]
fn a_bind_names_the_tenant_of_its_system_id_and_password() {
    let a = accounts();
    assert_eq!(a.check(b"acme", b"pw-acme").as_deref(), Ok("acme"));
    assert_eq!(a.check(b"globex", b"pw-glob").as_deref(), Ok("globex"));
}

#[test]
fn another_tenants_password_or_an_unknown_system_id_is_refused() {
    let a = accounts();
    assert_eq!(
        a.check(b"acme", b"pw-glob"),
        Err(CommandStatus::ESME_RINVPASWD)
    );
    assert_eq!(a.check(b"acme", b""), Err(CommandStatus::ESME_RINVPASWD));
    assert_eq!(
        a.check(b"initech", b"pw-acme"),
        Err(CommandStatus::ESME_RINVSYSID)
    );
    assert_eq!(a.check(b"", b""), Err(CommandStatus::ESME_RINVSYSID));
}

#[test]
fn smpp_connection_ids_meet_no_other_doors() {
    let a = next_conn();
    assert!(next_conn() > a && a >= SMPP_CONN_BASE);
    // Room for 2^61 gRPC calls below, and the framed door counts from 1.
    const { assert!(SMPP_CONN_BASE - crate::grpc::GRPC_CONN_BASE >= 1 << 61) };
}
