//! What a run's domain is: its name, the XML it is defined from, and the
//! `<lepton:run>` tag that records the run in its metadata. Everything
//! from the task is checked and escaped here before it reaches libvirt.

use lepton_core::backend::{BackendError, Handle};
use lepton_core::{NodeId, Run, TaskId};

use super::{
    LibvirtBackend, BACKEND, DOMAIN_PREFIX, MAX_TASK_NAME_CHARS, METADATA_NAMESPACE,
    METADATA_PREFIX,
};
use crate::shared::errors::invalid;

/// Hypervisors that boot a real machine need some memory to do it.
const MIN_MACHINE_MEMORY_MIB: u64 = 64;

/// The domain name of `run`: `lepton-t<task>-<attempt>`.
pub fn domain_name(run: Run) -> String {
    format!("{DOMAIN_PREFIX}{}-{}", run.task.0, run.attempt)
}

/// The run a domain name stands for, if it is exactly the name
/// [`domain_name`] gives (so `lepton-t07-1` and `lepton-t+7-1` are not).
pub fn parse_domain_name(name: &str) -> Option<Run> {
    let (task, attempt) = name.strip_prefix(DOMAIN_PREFIX)?.split_once('-')?;
    let run = Run {
        task: TaskId(task.parse().ok()?),
        attempt: attempt.parse().ok()?,
    };
    (domain_name(run) == name).then_some(run)
}

impl LibvirtBackend {
    /// The domain name of `handle`, which must be the one of its run.
    pub(super) fn domain_of(&self, handle: &Handle) -> Result<String, BackendError> {
        let name = domain_name(handle.run);
        if handle.id == name {
            Ok(name)
        } else {
            Err(BackendError::Invalid {
                backend: BACKEND.to_owned(),
                what: "handle id",
                value: handle.id.clone(),
                why: "is not the domain name of the handle's run",
            })
        }
    }
}

/// Escapes `value` for XML text and attribute values (either quote).
fn xml_escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// A task name fit for a domain description: no control characters (XML
/// cannot hold most of them), nothing XML forbids, not too long.
pub(super) fn validate_task_name(name: &str) -> Result<&str, BackendError> {
    if name.chars().any(char::is_control) {
        return Err(invalid(
            BACKEND,
            "task name",
            name,
            "contains a control character",
        ));
    }
    if name.chars().any(|c| matches!(c, '\u{FFFE}' | '\u{FFFF}')) {
        return Err(invalid(
            BACKEND,
            "task name",
            name,
            "contains a character XML cannot hold",
        ));
    }
    if name.chars().count() > MAX_TASK_NAME_CHARS {
        return Err(invalid(
            BACKEND,
            "task name",
            name,
            "is longer than 256 characters",
        ));
    }
    Ok(name)
}

/// A domain type for the XML: lower-case letters and digits.
pub(super) fn validate_domain_type(domain_type: &str) -> Result<(), BackendError> {
    let plain = !domain_type.is_empty()
        && domain_type
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if plain {
        Ok(())
    } else {
        Err(invalid(
            BACKEND,
            "domain type",
            domain_type,
            "must be lower-case letters and digits",
        ))
    }
}

/// ceil(`cpu_milli` / 1000), at least one.
pub(super) fn vcpus_for(cpu_milli: u64) -> u64 {
    cpu_milli.div_ceil(1000).max(1)
}

/// `memory_mib`, raised to what a `domain_type` that boots a real machine
/// needs.
pub(super) fn memory_for(domain_type: &str, memory_mib: u64) -> u64 {
    let minimum = match domain_type {
        "qemu" | "kvm" => MIN_MACHINE_MEMORY_MIB,
        _ => 1,
    };
    memory_mib.max(minimum)
}

/// What a domain is defined with.
#[derive(Debug)]
pub(super) struct DomainDefinition<'a> {
    pub(super) domain_type: &'a str,
    pub(super) run: Run,
    pub(super) node: NodeId,
    /// The task's name, already validated.
    pub(super) description: Option<&'a str>,
    pub(super) vcpus: u64,
    pub(super) memory_mib: u64,
}

/// The domain XML: diskless, no network, no graphics; the run in the name,
/// the title and the metadata. Every value is escaped.
pub(super) fn domain_xml(definition: &DomainDefinition<'_>) -> String {
    let run = definition.run;
    let description = definition
        .description
        .map(|d| format!("\n  <description>{}</description>", xml_escape(d)))
        .unwrap_or_default();
    format!(
        "<domain type='{domain_type}'>\n  \
           <name>{name}</name>\n  \
           <title>{title}</title>{description}\n  \
           <metadata>\n    \
             <{prefix}:run xmlns:{prefix}=\"{namespace}\" {tag}/>\n  \
           </metadata>\n  \
           <memory unit='MiB'>{memory}</memory>\n  \
           <vcpu>{vcpus}</vcpu>\n  \
           <os><type>hvm</type></os>\n  \
           <on_poweroff>destroy</on_poweroff>\n  \
           <on_reboot>restart</on_reboot>\n  \
           <on_crash>destroy</on_crash>\n\
         </domain>\n",
        domain_type = xml_escape(definition.domain_type),
        name = xml_escape(&domain_name(run)),
        title = xml_escape(&run_title(run)),
        prefix = METADATA_PREFIX,
        namespace = xml_escape(METADATA_NAMESPACE),
        tag = run_tag_attributes(run, definition.node),
        memory = definition.memory_mib,
        vcpus = definition.vcpus,
    )
}

/// A domain's title: `Lepton run t-7#2`.
pub(super) fn run_title(run: Run) -> String {
    format!("Lepton run {run}")
}

/// The attributes of the `<lepton:run>` metadata element recording `run`
/// on `node`.
pub(super) fn run_tag_attributes(run: Run, node: NodeId) -> String {
    format!(
        "task=\"{}\" attempt=\"{}\" node=\"{}\"",
        run.task.0, run.attempt, node.0
    )
}

/// The run recorded in a `<lepton:run>` element, as libvirt returns it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct RunTag {
    pub(super) run: Run,
    node: Option<NodeId>,
}

/// The run in a `<lepton:run>` element; `None` unless its task and attempt
/// are numbers.
pub(super) fn parse_run_tag(element: &str) -> Option<RunTag> {
    let run = Run {
        task: TaskId(xml_attr(element, "task")?.parse().ok()?),
        attempt: xml_attr(element, "attempt")?.parse().ok()?,
    };
    let node = xml_attr(element, "node")
        .and_then(|n| n.parse().ok())
        .map(NodeId);
    Some(RunTag { run, node })
}

/// The raw value of attribute `name` in the first element of `element`.
/// Enough for the numbers this module writes; it does not unescape.
fn xml_attr<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    let tag_end = element.find('>').unwrap_or(element.len());
    let mut rest = &element[..tag_end];
    while let Some(at) = rest.find(name) {
        let preceded_by_space = rest[..at].ends_with(char::is_whitespace);
        let after = &rest[at + name.len()..];
        if preceded_by_space {
            if let Some(value) = after.trim_start().strip_prefix('=') {
                let value = value.trim_start();
                let quote = value.chars().next().filter(|q| matches!(q, '"' | '\''))?;
                let value = &value[1..];
                return value.find(quote).map(|end| &value[..end]);
            }
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::testing::assert_invalid;

    fn definition(description: Option<&str>) -> DomainDefinition<'_> {
        DomainDefinition {
            domain_type: "qemu",
            run: Run::new(TaskId(7), 2),
            node: NodeId(3),
            description,
            vcpus: 2,
            memory_mib: 256,
        }
    }

    #[test]
    fn escapes_the_five_xml_specials() {
        assert_eq!(
            xml_escape(r#"a<b>&"c"'d'"#),
            "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;"
        );
        assert_eq!(xml_escape("&amp;"), "&amp;amp;");
        assert_eq!(xml_escape("plain é"), "plain é");
    }

    #[test]
    fn domain_xml_holds_the_run() {
        let xml = domain_xml(&definition(Some("render")));
        assert!(xml.starts_with("<domain type='qemu'>"), "{xml}");
        assert!(xml.contains("<name>lepton-t7-2</name>"), "{xml}");
        assert!(xml.contains("<title>Lepton run t-7#2</title>"), "{xml}");
        assert!(xml.contains("<description>render</description>"), "{xml}");
        assert!(xml.contains("<memory unit='MiB'>256</memory>"), "{xml}");
        assert!(xml.contains("<vcpu>2</vcpu>"), "{xml}");
        assert!(!xml.contains("<graphics"), "{xml}");
        assert!(!xml.contains("<disk"), "{xml}");
        let tag = xml
            .lines()
            .find(|l| l.contains("<lepton:run"))
            .expect("a run tag");
        assert!(
            tag.contains(r#"xmlns:lepton="https://lepton.dev/run""#),
            "{tag}"
        );
        assert_eq!(
            parse_run_tag(tag),
            Some(RunTag {
                run: Run::new(TaskId(7), 2),
                node: Some(NodeId(3))
            })
        );
    }

    #[test]
    fn domain_xml_escapes_the_task_name() {
        let name = r#"</name><evil/> & "x" 'y'"#;
        let xml = domain_xml(&definition(Some(validate_task_name(name).expect("valid"))));
        assert!(!xml.contains("<evil"), "{xml}");
        assert!(
            xml.contains(
                "<description>&lt;/name&gt;&lt;evil/&gt; &amp; &quot;x&quot; &apos;y&apos;</description>"
            ),
            "{xml}"
        );
        assert_eq!(xml.matches("<name>").count(), 1, "{xml}");
    }

    #[test]
    fn domain_xml_without_a_name_has_no_description() {
        let xml = domain_xml(&definition(None));
        assert!(!xml.contains("<description>"), "{xml}");
    }

    #[test]
    fn task_names_with_control_characters_are_invalid() {
        for name in [
            "a\nb",
            "tab\there",
            "nul\0",
            "bell\u{7}",
            "c1\u{85}",
            "\u{FFFE}",
        ] {
            assert_invalid(validate_task_name(name), "task name");
        }
        assert!(validate_task_name(&"x".repeat(MAX_TASK_NAME_CHARS + 1)).is_err());
        assert!(validate_task_name(&"é".repeat(MAX_TASK_NAME_CHARS)).is_ok());
        assert!(validate_task_name("</name><evil/>").is_ok());
    }

    #[test]
    fn domain_types_are_plain_words() {
        assert!(validate_domain_type("kvm").is_ok());
        assert!(validate_domain_type("qemu").is_ok());
        for bad in ["", "KVM", "kvm'", "k vm", "x<y"] {
            assert_invalid(validate_domain_type(bad), "domain type");
        }
    }

    #[test]
    fn sizes_round_up_and_have_minimums() {
        assert_eq!(vcpus_for(0), 1);
        assert_eq!(vcpus_for(1), 1);
        assert_eq!(vcpus_for(1000), 1);
        assert_eq!(vcpus_for(1001), 2);
        assert_eq!(vcpus_for(2500), 3);
        assert_eq!(memory_for("qemu", 16), 64);
        assert_eq!(memory_for("kvm", 0), 64);
        assert_eq!(memory_for("qemu", 512), 512);
        assert_eq!(memory_for("test", 0), 1);
        assert_eq!(memory_for("test", 16), 16);
    }

    #[test]
    fn domain_names_round_trip() {
        for r in [
            Run::new(TaskId(0), 0),
            Run::new(TaskId(7), 2),
            Run::new(TaskId(u64::MAX), u32::MAX),
        ] {
            assert_eq!(parse_domain_name(&domain_name(r)), Some(r));
        }
        assert_eq!(domain_name(Run::new(TaskId(7), 2)), "lepton-t7-2");
    }

    #[test]
    fn foreign_domain_names_do_not_parse() {
        for name in [
            "test",
            "lepton-t",
            "lepton-t7",
            "lepton-t7-",
            "lepton-t-7-2",
            "lepton-t07-2",
            "lepton-t7-02",
            "lepton-t+7-2",
            "lepton-t7-+2",
            "lepton-t7-2-3",
            "lepton-t7-2 ",
            "lepton-tx-2",
            "lepton-t7-4294967296",
            "Lepton-t7-2",
        ] {
            assert_eq!(parse_domain_name(name), None, "{name}");
        }
    }

    #[test]
    fn run_tags_parse_as_libvirt_returns_them() {
        let tag =
            r#"<lepton:run xmlns:lepton="https://lepton.dev/run" task="12" attempt="3" node="5"/>"#;
        assert_eq!(
            parse_run_tag(tag),
            Some(RunTag {
                run: Run::new(TaskId(12), 3),
                node: Some(NodeId(5))
            })
        );
        let single = "<run xmlns='https://lepton.dev/run' attempt = '1' task='9'/>";
        assert_eq!(
            parse_run_tag(single),
            Some(RunTag {
                run: Run::new(TaskId(9), 1),
                node: None
            })
        );
        assert_eq!(parse_run_tag("<run task=\"x\" attempt=\"1\"/>"), None);
        assert_eq!(parse_run_tag("<run subtask=\"1\" attempt=\"1\"/>"), None);
        assert_eq!(xml_attr("<run a=\"1\"><x b=\"2\"/></run>", "b"), None);
    }
}
