//! Endpoints that exist only in the cluster state (scale benchmarks): attached and
//! detached in batches, all or nothing, through the same checks as `attach`.

use super::network::{attach, detach};
use super::Changed;
use crate::ids::NodeId;
use crate::state::{
    ApplyError, AttachSpec, ClusterState, Output, StateOnlyEndpoint, MAX_STATE_ONLY_BATCH,
    STATE_ONLY_SANDBOX,
};

/// Refuses a sandbox path of an ordinary `attach` that would make a state-only endpoint.
pub(super) fn refuse_reserved_sandbox(sandbox: &str) -> Result<(), ApplyError> {
    if sandbox.starts_with(STATE_ONLY_SANDBOX) {
        return Err(ApplyError::Invalid(format!(
            "sandbox paths under {STATE_ONLY_SANDBOX} are reserved for state-only endpoints (POST /v1/bench/endpoints)"
        )));
    }
    Ok(())
}

fn check_key(key: &str) -> Result<(), ApplyError> {
    let ok = !key.is_empty()
        && key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && key != "."
        && key != "..";
    if !ok {
        return Err(ApplyError::Invalid(format!(
            "invalid state-only endpoint key {key:?}: use 1-64 letters, digits, '-', '_' or '.'"
        )));
    }
    Ok(())
}

/// Attaches `add` and detaches `remove` (keys) on `network` of `node`. Attaches first:
/// when one fails, those attached before it are detached again and the error returned
/// (detaching cannot fail once the network is found).
pub(super) fn state_only_endpoints(
    state: &mut ClusterState,
    network: &str,
    node: NodeId,
    add: &[StateOnlyEndpoint],
    remove: &[String],
    at: u64,
) -> Changed {
    let total = add.len() + remove.len();
    if total == 0 || total > MAX_STATE_ONLY_BATCH {
        return Err(ApplyError::Invalid(format!(
            "a batch of state-only endpoints has 1-{MAX_STATE_ONLY_BATCH} changes, not {total}"
        )));
    }
    for key in add
        .iter()
        .map(|e| e.key.as_str())
        .chain(remove.iter().map(String::as_str))
    {
        check_key(key)?;
    }
    let network = state.find_network(network)?.name.clone();
    let mut attached: Vec<String> = Vec::new();
    let mut changed = false;
    for e in add {
        let spec = AttachSpec {
            network: network.clone(),
            node,
            sandbox: e.sandbox(),
            name: e.name.clone(),
            service: e.service.clone(),
            // Not a sandbox a runtime hands over, but like one it needs no attachable
            // network: only benchmarks make these.
            handoff: true,
            ..AttachSpec::default()
        };
        match attach(state, &spec, at) {
            Ok((_, true)) => {
                attached.push(spec.sandbox);
                changed = true;
            }
            Ok((_, false)) => {}
            Err(err) => {
                for sandbox in &attached {
                    detach(state, &network, node, sandbox)?;
                }
                return Err(ApplyError::Invalid(format!(
                    "state-only endpoint {:?}: {err}",
                    e.key
                )));
            }
        }
    }
    for key in remove {
        let (_, gone) = detach(
            state,
            &network,
            node,
            &crate::state::state_only_sandbox(key),
        )?;
        changed |= gone;
    }
    Ok((Output::None, changed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::fixtures;

    fn ep(key: &str, name: Option<&str>) -> StateOnlyEndpoint {
        StateOnlyEndpoint {
            key: key.into(),
            name: name.map(String::from),
            service: None,
        }
    }

    #[test]
    fn state_only_endpoints_may_be_tasks_of_a_service_on_their_network() {
        use crate::state::{apply, Command, Proposal, ServiceMode, ServiceSpec};
        let (mut state, node) = fixtures::state_with_network("net");
        let task = |key: &str, service: &str| StateOnlyEndpoint {
            service: Some(service.into()),
            ..ep(key, None)
        };
        let err = state_only_endpoints(&mut state, "net", node, &[task("t0", "web")], &[], 1)
            .unwrap_err();
        assert!(err.to_string().contains("web"), "{err}");
        let spec = ServiceSpec {
            name: "web".into(),
            networks: vec!["net".into()],
            mode: ServiceMode::Replicated { replicas: 1 },
            ..Default::default()
        };
        let command = Command::CreateService {
            id: "0123456789abcdef01234567".into(),
            spec,
        };
        apply(&mut state, None, &Proposal { at_ms: 2, command }).unwrap();
        let add = [task("t0", "web"), task("t1", "web"), ep("plain", None)];
        state_only_endpoints(&mut state, "net", node, &add, &[], 3).unwrap();
        let mut of_web: Vec<&str> = state
            .endpoints
            .values()
            .filter(|e| e.service.as_deref() == Some("web"))
            .map(|e| e.sandbox.as_str())
            .collect();
        of_web.sort_unstable();
        assert_eq!(of_web, ["/shoal-state-only/t0", "/shoal-state-only/t1"]);
        assert!(state.endpoints.values().all(|e| e.task.is_none()));
    }

    #[test]
    fn batches_attach_and_detach_all_or_nothing() {
        let (mut state, node) = fixtures::state_with_network("net");
        let add: Vec<_> = (0..100)
            .map(|i| ep(&format!("e{i}"), Some(&format!("n{i}"))))
            .collect();
        let (_, changed) = state_only_endpoints(&mut state, "net", node, &add, &[], 1).unwrap();
        assert!(changed);
        assert_eq!(state.endpoints.len(), 100);
        assert!(state
            .endpoints
            .values()
            .all(|e| e.is_state_only() && e.node == node));
        let leases = state.networks["net"].space.clone().unwrap();
        // The last one clashes by name: nothing of the batch stays.
        let clash = vec![ep("x1", None), ep("x2", Some("n5"))];
        let err = state_only_endpoints(&mut state, "net", node, &clash, &[], 2).unwrap_err();
        assert!(err.to_string().contains("x2"), "{err}");
        assert_eq!(state.endpoints.len(), 100);
        assert_eq!(
            state.networks["net"]
                .space
                .as_ref()
                .unwrap()
                .leases()
                .count(),
            leases.leases().count()
        );
        let remove: Vec<String> = (0..50).map(|i| format!("e{i}")).collect();
        let (_, changed) = state_only_endpoints(&mut state, "net", node, &[], &remove, 3).unwrap();
        assert!(changed);
        assert_eq!(state.endpoints.len(), 50);
        let (_, changed) = state_only_endpoints(&mut state, "net", node, &[], &remove, 4).unwrap();
        assert!(!changed, "detaching missing keys changes nothing");
    }

    #[test]
    fn bad_batches_are_refused() {
        let (mut state, node) = fixtures::state_with_network("net");
        let cases: Vec<(Vec<StateOnlyEndpoint>, Vec<String>, &str)> = vec![
            (vec![], vec![], "1-5000"),
            (
                vec![ep("a/b", None)],
                vec![],
                "invalid state-only endpoint key",
            ),
            (
                vec![ep("", None)],
                vec![],
                "invalid state-only endpoint key",
            ),
            (vec![], vec!["..".into()], "invalid state-only endpoint key"),
            (vec![ep("ok", Some("bad name!"))], vec![], "invalid name"),
            (
                (0..5001).map(|i| ep(&format!("e{i}"), None)).collect(),
                vec![],
                "1-5000",
            ),
        ];
        for (add, remove, want) in cases {
            let err = state_only_endpoints(&mut state, "net", node, &add, &remove, 1).unwrap_err();
            assert!(err.to_string().contains(want), "{err} lacks {want}");
        }
        assert!(state_only_endpoints(&mut state, "nope", node, &[ep("a", None)], &[], 1).is_err());
        assert!(state.endpoints.is_empty());
        assert!(refuse_reserved_sandbox("/shoal-state-only/x").is_err());
        assert!(refuse_reserved_sandbox("/run/netns/x").is_ok());
    }
}
