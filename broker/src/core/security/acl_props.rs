//! Seeded property tests of the authorizer: adding a DENY never grants,
//! removing an ALLOW never grants, a super user is always granted, and
//! the matching rules (LITERAL, `*`, PREFIXED, implied Describe) by
//! example. Rerun a seed with `STRATA_PROP_SEED=N cargo test -p
//! strata-broker --lib acl_props`.

use super::acl::*;
use super::principal::Principal;

const NAMES: [&str; 5] = ["orders", "orders-eu", "ord", "payments", "*"];
const USERS: [&str; 3] = ["User:alice", "User:bob", "User:*"];
const OPS: [Operation; 9] = [
    Operation::All,
    Operation::Read,
    Operation::Write,
    Operation::Create,
    Operation::Delete,
    Operation::Alter,
    Operation::Describe,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
];
const TYPES: [ResourceType; 3] = [
    ResourceType::Topic,
    ResourceType::Group,
    ResourceType::Cluster,
];

fn acl(rng: &mut fastrand::Rng, permission: Permission) -> Acl {
    Acl {
        principal: USERS[rng.usize(..USERS.len())].into(),
        resource_type: TYPES[rng.usize(..TYPES.len())],
        pattern_type: if rng.bool() {
            PatternType::Literal
        } else {
            PatternType::Prefixed
        },
        resource_name: NAMES[rng.usize(..NAMES.len())].into(),
        operation: OPS[rng.usize(..OPS.len())],
        permission,
    }
}

fn any_acl(rng: &mut fastrand::Rng) -> Acl {
    let p = if rng.bool() {
        Permission::Allow
    } else {
        Permission::Deny
    };
    acl(rng, p)
}

/// Every question over the small universe: (principal, op, type, name).
fn questions() -> Vec<(Principal, Operation, ResourceType, &'static str)> {
    let mut q = Vec::new();
    for u in ["alice", "bob", "carol"] {
        for op in &OPS[1..] {
            for t in TYPES {
                for n in &NAMES[..4] {
                    q.push((Principal::user(u), *op, t, *n));
                }
            }
        }
    }
    q
}

fn granted(acls: &Acls, q: &(Principal, Operation, ResourceType, &str)) -> bool {
    let r = Resource {
        resource_type: q.2,
        name: q.3,
    };
    acls.authorize(&q.0, q.1, &r).granted()
}

fn run(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let n = rng.usize(0..12);
    let entries: Vec<Acl> = (0..n).map(|_| any_acl(&mut rng)).collect();
    let root = Principal::user("root");
    let base = Acls::new(entries.clone(), vec![root.clone()]);
    let deny = acl(&mut rng, Permission::Deny);
    let with_deny = Acls::new([entries.clone(), vec![deny.clone()]].concat(), vec![]);
    let allows: Vec<usize> = (0..n)
        .filter(|&i| entries[i].permission == Permission::Allow)
        .collect();
    let without_allow = (!allows.is_empty()).then(|| {
        let gone = allows[rng.usize(..allows.len())];
        let mut e = entries.clone();
        e.remove(gone);
        Acls::new(e, vec![])
    });
    for q in questions() {
        let ctx = format!("seed {seed} (replay with STRATA_PROP_SEED={seed}): {q:?} {entries:?}");
        assert!(
            !granted(&with_deny, &q) || granted(&base, &q),
            "{ctx}: adding {deny:?} granted"
        );
        if let Some(w) = &without_allow {
            assert!(
                !granted(w, &q) || granted(&base, &q),
                "{ctx}: removing an ALLOW granted"
            );
        }
        let as_root = (root.clone(), q.1, q.2, q.3);
        assert!(granted(&base, &as_root), "{ctx}: a super user was refused");
        if entries.iter().all(|a| a.permission == Permission::Deny) {
            assert!(!granted(&base, &q), "{ctx}: granted with no ALLOW at all");
        }
    }
}

#[test]
fn the_authorizer_never_grants_more_for_a_deny_or_a_removed_allow() {
    if let Ok(seed) = std::env::var("STRATA_PROP_SEED") {
        run(seed.parse().expect("STRATA_PROP_SEED is a number"));
        return;
    }
    let base = fastrand::u64(..);
    println!("acl_props seeds {base}..{}", base.wrapping_add(300));
    for i in 0..300 {
        run(base.wrapping_add(i));
    }
}

fn allow(principal: &str, t: ResourceType, p: PatternType, name: &str, op: Operation) -> Acl {
    Acl {
        principal: principal.into(),
        resource_type: t,
        pattern_type: p,
        resource_name: name.into(),
        operation: op,
        permission: Permission::Allow,
    }
}

#[test]
fn literal_wildcard_prefixed_and_implied_operations_match_as_in_kafka() {
    use Operation as O;
    use PatternType as P;
    use ResourceType as T;
    let alice = Principal::user("alice");
    let bob = Principal::user("bob");
    let check = |acls: &[Acl], who: &Principal, op, r: Resource<'_>| {
        Acls::new(acls.to_vec(), vec![])
            .authorize(who, op, &r)
            .granted()
    };
    let lit = [allow("User:alice", T::Topic, P::Literal, "orders", O::Read)];
    assert!(check(&lit, &alice, O::Read, Resource::topic("orders")));
    assert!(!check(&lit, &alice, O::Read, Resource::topic("orders-eu")));
    assert!(!check(&lit, &bob, O::Read, Resource::topic("orders")));
    assert!(
        !check(&lit, &alice, O::Read, Resource::group("orders")),
        "types differ"
    );
    assert!(!check(&lit, &alice, O::Write, Resource::topic("orders")));
    assert!(
        check(&lit, &alice, O::Describe, Resource::topic("orders")),
        "Read implies Describe"
    );
    let pre = [allow(
        "User:alice",
        T::Topic,
        P::Prefixed,
        "orders",
        O::Write,
    )];
    assert!(check(&pre, &alice, O::Write, Resource::topic("orders-eu")));
    assert!(check(&pre, &alice, O::Write, Resource::topic("orders")));
    assert!(!check(&pre, &alice, O::Write, Resource::topic("ord")));
    let star = [allow("User:*", T::Topic, P::Literal, "*", O::All)];
    assert!(check(&star, &bob, O::Delete, Resource::topic("anything")));
    assert!(!check(&star, &bob, O::Alter, Resource::cluster()));
    let cfg = [allow(
        "User:alice",
        T::Topic,
        P::Literal,
        "orders",
        O::AlterConfigs,
    )];
    assert!(check(
        &cfg,
        &alice,
        O::DescribeConfigs,
        Resource::topic("orders")
    ));
    assert!(!check(&cfg, &alice, O::Describe, Resource::topic("orders")));
    let mut deny_read = lit.to_vec();
    deny_read.push(Acl {
        permission: Permission::Deny,
        ..lit[0].clone()
    });
    assert!(
        !check(&deny_read, &alice, O::Read, Resource::topic("orders")),
        "DENY wins"
    );
    // Kafka checks DENY on the operation asked for (and All) only: the
    // ALLOW Read still implies Describe.
    assert!(check(
        &deny_read,
        &alice,
        O::Describe,
        Resource::topic("orders")
    ));
}
