//! `--hostname` templates, as Docker's service templates spell them:
//! `{{.Service.Name}}-{{.Task.Slot}}` on task 2 of `web` is `web-2`.
//!
//! Placeholders: `.Service.ID`, `.Service.Name`, `.Node.ID`, `.Node.Hostname`,
//! `.Task.ID`, `.Task.Name` (`<service>.<slot>.<task ID>`) and `.Task.Slot` (the
//! node's ID for a global service's task, as swarmkit's `template/context.go`).
//! Anything else inside `{{ }}` is refused when the service is created, so a task
//! never fails to start over its host name.

use super::{Node, Service, ServiceMode, SpecError, Task};

/// The longest host name the kernel takes (`HOST_NAME_MAX`).
pub const MAX_HOSTNAME_LEN: usize = 64;

/// The values a template is filled from.
#[derive(Debug, Clone, Copy)]
pub struct TemplateContext<'a> {
    /// The task's service.
    pub service: &'a Service,
    /// The task.
    pub task: &'a Task,
    /// Its node.
    pub node: &'a Node,
}

enum Piece<'t> {
    Text(&'t str),
    Field(&'t str),
}

fn pieces(template: &str) -> Result<Vec<Piece<'_>>, SpecError> {
    let bad = |reason: String| SpecError::HostnameTemplate {
        template: template.to_string(),
        reason,
    };
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push(Piece::Text(&rest[..open]));
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or_else(|| bad("unclosed {{".into()))?;
        let field = after[..close].trim();
        match field {
            ".Service.ID" | ".Service.Name" | ".Node.ID" | ".Node.Hostname" | ".Task.ID"
            | ".Task.Name" | ".Task.Slot" => out.push(Piece::Field(field)),
            other => {
                return Err(bad(format!(
                    "unknown placeholder {other:?}; use .Service.ID, .Service.Name, .Node.ID, .Node.Hostname, .Task.ID, .Task.Name or .Task.Slot"
                )))
            }
        }
        rest = &after[close + 2..];
    }
    if rest.contains("}}") {
        return Err(bad("stray }}".into()));
    }
    out.push(Piece::Text(rest));
    Ok(out)
}

/// Checks a template: known placeholders only, and text a host name may hold.
pub fn validate(template: &str) -> Result<(), SpecError> {
    if template.is_empty() || template.len() > 256 {
        return Err(SpecError::HostnameTemplateLength);
    }
    for piece in pieces(template)? {
        if let Piece::Text(t) = piece {
            if let Some(c) = t.chars().find(|c| !valid_char(*c)) {
                return Err(SpecError::HostnameTemplate {
                    template: template.to_string(),
                    reason: format!(
                        "{c:?} cannot be in a host name (letters, digits, '-', '_' and '.')"
                    ),
                });
            }
        }
    }
    Ok(())
}

fn valid_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Fills `template` in for one task; errors if the result is no host name.
pub fn expand(template: &str, ctx: &TemplateContext<'_>) -> Result<String, SpecError> {
    let mut out = String::new();
    for piece in pieces(template)? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Field(f) => out.push_str(&match f {
                ".Service.ID" => ctx.service.id.clone(),
                ".Service.Name" => ctx.service.spec.name.clone(),
                ".Node.ID" => ctx.node.id.to_string(),
                ".Node.Hostname" => ctx.node.name.clone(),
                ".Task.ID" => ctx.task.id.clone(),
                ".Task.Name" => ctx.task.container_name(ctx.service.spec.mode),
                _ => match ctx.service.spec.mode {
                    ServiceMode::Replicated { .. } => (ctx.task.slot + 1).to_string(),
                    ServiceMode::Global => ctx.node.id.to_string(),
                },
            }),
        }
    }
    if out.is_empty() || out.len() > MAX_HOSTNAME_LEN || !out.chars().all(valid_char) {
        return Err(SpecError::NotAHostname(out));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::NodeId;
    use crate::state::{EndpointMode, Role, ServiceSpec, TaskState};

    fn fixture(mode: ServiceMode) -> (Service, Task, Node) {
        let service = Service {
            id: "5e41".into(),
            spec: ServiceSpec {
                name: "web".into(),
                networks: vec![],
                mode,
                publish: vec![],
                endpoint_mode: EndpointMode::Vip,
                labels: Default::default(),
                command: vec!["x".into()],
                network_options: Default::default(),
                placement: Default::default(),
                dns: Default::default(),
                hostname: None,
                ..Default::default()
            },
            vips: Default::default(),
            vips6: Default::default(),
            created_at_ms: 0,
            updated_at_ms: 0,
            version: 0,
            previous_spec: None,
            update_status: None,
        };
        let task = Task {
            state: TaskState::Running,
            ..Task::new("7a5c", "web", 1, NodeId(0xfe), 0, 0)
        };
        let node = Node {
            id: NodeId(0xfe),
            ..crate::state::fixtures::node(3, Role::Worker, &[])
        };
        (service, task, node)
    }

    /// docs: "Create services using templates" (`docker service create --hostname
    /// "{{.Node.Hostname}}-{{.Service.Name}}"`).
    #[test]
    fn templates_fill_in_as_docker_does() {
        let (service, task, node) = fixture(ServiceMode::Replicated { replicas: 3 });
        let ctx = TemplateContext {
            service: &service,
            task: &task,
            node: &node,
        };
        assert_eq!(
            expand("{{.Node.Hostname}}-{{.Service.Name}}", &ctx).unwrap(),
            "n3-web"
        );
        assert_eq!(
            expand("{{ .Service.Name }}.{{.Task.Slot}}", &ctx).unwrap(),
            "web.2"
        );
        assert_eq!(expand("{{.Task.Name}}", &ctx).unwrap(), "web.2.7a5c");
        assert_eq!(expand("plain", &ctx).unwrap(), "plain");
        let (service, task, node) = fixture(ServiceMode::Global);
        let ctx = TemplateContext {
            service: &service,
            task: &task,
            node: &node,
        };
        assert_eq!(
            expand("{{.Task.Slot}}", &ctx).unwrap(),
            "00000000000000fe",
            "a global task's slot is its node"
        );
    }

    #[test]
    fn bad_templates_are_refused_before_any_task_starts() {
        for (t, why) in [
            ("{{.Service.Labels}}", "unknown placeholder"),
            ("{{.Task.Slot", "unclosed"),
            ("a}}b", "stray"),
            ("web server", "cannot be in a host name"),
            ("", "1-256"),
        ] {
            let err = validate(t).unwrap_err().to_string();
            assert!(err.contains(why), "{t:?}: {err}");
        }
        assert!(validate("{{.Service.Name}}-{{.Task.Slot}}").is_ok());
    }
}
