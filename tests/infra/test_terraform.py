"""Offline checks of infra/: every .tf parses; the Terraform deploys exactly common/topology.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from common import topology
from tests.infra.terraform_model import Instance, Module, parse_file

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MODULE_DIR = INFRA / "modules" / "leadrun"
ENVIRONMENTS = ("staging", "prod")
PUSH_SPECS = [spec for spec in topology.FUNCTIONS if spec.subscription is not None]

# Least privilege, as agreed for each function (docs/deploy.md): the topics it may publish to,
# and whether it signs its own domain-wide-delegation tokens.
PUBLISHES_TO = {
    # Both wake the sweeper for the waits they write (lead-sweep).
    "schedule": {
        topology.TOPIC_CALENDAR,
        topology.TOPIC_DRIVE,
        topology.TOPIC_NOTIFY,
        topology.TOPIC_SWEEP,
    },
    # Resume, replay and undo publish the actions they set going again, as schedule does.
    "control": {*topology.ACTION_TOPICS.values(), topology.TOPIC_SWEEP},
    "book": {topology.TOPIC_NOTIFY},
    # The sweeper re-publishes stale actions to their topics; it never calls Workspace.
    "sweep": set(topology.ACTION_TOPICS.values()),
}
# Settings that only some functions get, beyond the ones every function gets.
# The operators (docs/decisions/0014) reach only the functions that check who owns a run.
OPERATOR_ENV = {"LEADRUN_OPERATOR_UIDS": '${join(",", var.operator_uids)}'}
# The Operations page (diagnostics `/ops`) steers through control on the functions' own origin.
FUNCTIONS_ORIGIN = "https://${var.region}-${var.project_id}.cloudfunctions.net"
FUNCTION_ENV = {
    "control": {**OPERATOR_ENV, "LEADRUN_OPS_ORIGIN": FUNCTIONS_ORIGIN},
    "diagnostics": {
        **OPERATOR_ENV,
        "LEADRUN_CONTROL_URL": f"{FUNCTIONS_ORIGIN}/control",
        "LEADRUN_FIREBASE_API_KEY": "${var.firebase_api_key}",
        "LEADRUN_FIREBASE_AUTH_DOMAIN": "${var.firebase_auth_domain}",
    },
    "sweep": {
        "LEADRUN_SWEEP_STALE_S": str(topology.SWEEP_STALE_S),
        "LEADRUN_SWEEP_LOOP_S": str(topology.SWEEP_LOOP_S),
    },
}
COMMON_ENV = {
    "GOOGLE_CLOUD_PROJECT",
    "LEADRUN_GOOGLE_MODE",
    "LEADRUN_DELEGATION_SA",
    "LEADRUN_ALLOWED_ORIGINS",
    "LEADRUN_WORKSPACE_SUBJECTS",
    "LOG_EXECUTION_ID",
}
# The sweeper's collection-group query (common/store.py stale_receipts) needs this index.
SWEEP_INDEX = {
    "collectionGroup": "receipts",
    "queryScope": "COLLECTION_GROUP",
    "fields": [
        {"fieldPath": "watched", "order": "ASCENDING"},
        {"fieldPath": "updatedAt", "order": "ASCENDING"},
    ],
}
DELEGATES = {"book", "notify", "drive"}
# What Terraform may pass to deploy.sh's apply (deploy.sh sets exactly these).
DEPLOY_VARIABLES = {
    "project_id",
    "region",
    "source_bucket",
    "source_objects",
    "allowed_origins",
    "workspace_subjects",
    "operator_uids",
    "notification_channels",
    "firebase_api_key",
    "firebase_auth_domain",
}


@pytest.fixture(scope="module")
def module() -> Module:
    return Module.load(MODULE_DIR)


def by_key(instances: list[Instance]) -> dict[str | None, Instance]:
    return {instance.key: instance for instance in instances}


def ref(resource: str, key: str, attribute: str) -> str:
    """How the model renders a reference to another resource instance."""
    return f'${{{resource}["{key}"].{attribute}}}'


def only_block(body: dict, name: str) -> dict:
    blocks = body.get(name, [])
    assert len(blocks) == 1, f"expected one {name} block, got {blocks!r}"
    return blocks[0]


@pytest.mark.parametrize(
    "path", sorted(INFRA.rglob("*.tf")), ids=lambda p: str(p.relative_to(INFRA))
)
def test_every_tf_file_parses(path: Path) -> None:
    document = parse_file(path)
    assert document, f"{path} is empty"


def test_there_is_terraform_for_each_environment() -> None:
    for env in ENVIRONMENTS:
        assert list((INFRA / "environments" / env).glob("*.tf")), env


def test_topics_are_the_topology_topics(module: Module) -> None:
    names = [i.body["name"] for i in module.instances("google_pubsub_topic")]
    assert sorted(names) == sorted(topology.TOPICS)


def test_subscriptions_are_the_topology_subscriptions_with_its_policies(module: Module) -> None:
    subscriptions = {i.body["name"]: i for i in module.instances("google_pubsub_subscription")}
    assert set(subscriptions) == {spec.subscription for spec in PUSH_SPECS}

    for spec in PUSH_SPECS:
        assert spec.subscription is not None and spec.topic is not None
        body = subscriptions[spec.subscription].body
        assert body["topic"] == ref("google_pubsub_topic.topic", spec.topic, "id")
        assert body["ack_deadline_seconds"] == spec.ack_deadline_s
        assert body["message_retention_duration"] == f"{topology.MESSAGE_RETENTION_S}s"
        assert body["retain_acked_messages"] is True
        assert only_block(body, "expiration_policy") == {"ttl": ""}
        assert only_block(body, "retry_policy") == {
            "minimum_backoff": f"{topology.RETRY_MIN_BACKOFF_S}s",
            "maximum_backoff": f"{topology.RETRY_MAX_BACKOFF_S}s",
        }
        if spec.dead_letter:
            assert only_block(body, "dead_letter_policy") == {
                "dead_letter_topic": ref(
                    "google_pubsub_topic.topic", topology.TOPIC_DEAD_LETTER, "id"
                ),
                "max_delivery_attempts": topology.MAX_DELIVERY_ATTEMPTS,
            }
        else:
            assert "dead_letter_policy" not in body

        push = only_block(body, "push_config")
        function_uri = ref(
            "google_cloudfunctions2_function.function", spec.name, "service_config[0].uri"
        )
        # The topic in the path makes functions-framework decode the envelope as a CloudEvent.
        assert push["push_endpoint"] == (
            f"{function_uri}/projects/${{var.project_id}}/topics/{spec.topic}"
        )
        assert only_block(push, "oidc_token") == {
            "service_account_email": "${google_service_account.push_invoker.email}",
            "audience": function_uri,
        }


def test_functions_are_the_topology_functions(module: Module) -> None:
    functions = by_key(module.instances("google_cloudfunctions2_function"))
    assert set(functions) == {spec.name for spec in topology.FUNCTIONS}

    for spec in topology.FUNCTIONS:
        body = functions[spec.name].body
        assert body["name"] == spec.name
        build = only_block(body, "build_config")
        assert build["runtime"] == "python311"
        assert build["entry_point"] == spec.target
        storage = only_block(only_block(build, "source"), "storage_source")
        assert storage["object"] == f'${{var.source_objects["{spec.source_dir}"]}}'

        service = only_block(body, "service_config")
        own_account = ref("google_service_account.function", spec.name, "email")
        assert service["service_account_email"] == own_account
        expected_ingress = "ALLOW_ALL" if spec.signature == "http" else "ALLOW_INTERNAL_ONLY"
        assert service["ingress_settings"] == expected_ingress
        assert service["timeout_seconds"] == spec.ack_deadline_s
        env = service["environment_variables"]
        assert env["LEADRUN_GOOGLE_MODE"] == "workspace"
        assert env["LEADRUN_DELEGATION_SA"] == own_account
        assert env["GOOGLE_CLOUD_PROJECT"] == "${var.project_id}"
        assert env["LEADRUN_ALLOWED_ORIGINS"] == '${join(",", var.allowed_origins)}'
        extra = FUNCTION_ENV.get(spec.name, {})
        assert set(env) == COMMON_ENV | set(extra), spec.name
        assert {name: env[name] for name in extra} == extra
        # Pub/Sub functions are triggered by our push subscriptions, not by an Eventarc trigger.
        assert "event_trigger" not in body


def test_only_pubsub_functions_are_pushed_to_and_only_by_the_invoker(module: Module) -> None:
    invokers = module.instances("google_cloud_run_v2_service_iam_member")
    public = {i.key for i in invokers if i.body["member"] == "allUsers"}
    pushed = {
        i.key
        for i in invokers
        if i.body["member"] == "serviceAccount:${google_service_account.push_invoker.email}"
    }
    assert public == {s.name for s in topology.FUNCTIONS if s.signature == "http"}
    assert pushed == {s.name for s in PUSH_SPECS}
    assert all(i.body["role"] == "roles/run.invoker" for i in invokers)


def test_pubsub_service_agent_can_dead_letter(module: Module) -> None:
    agent = (
        "serviceAccount:service-${data.google_project.this.number}"
        "@gcp-sa-pubsub.iam.gserviceaccount.com"
    )
    publisher = by_key(module.instances("google_pubsub_topic_iam_member", "dead_letter_publisher"))
    assert publisher[None].body == {
        "project": "${var.project_id}",
        "topic": ref("google_pubsub_topic.topic", topology.TOPIC_DEAD_LETTER, "name"),
        "role": "roles/pubsub.publisher",
        "member": agent,
    }
    subscribers = module.instances(
        "google_pubsub_subscription_iam_member", "dead_letter_subscriber"
    )
    assert {i.key for i in subscribers} == {s.name for s in PUSH_SPECS if s.dead_letter}
    for instance in subscribers:
        assert instance.body["role"] == "roles/pubsub.subscriber"
        assert instance.body["member"] == agent
        assert instance.body["subscription"] == ref(
            "google_pubsub_subscription.push", instance.key or "", "name"
        )


def test_function_service_accounts_have_least_privilege(module: Module) -> None:
    accounts = by_key(module.instances("google_service_account", "function"))
    assert set(accounts) == {spec.name for spec in topology.FUNCTIONS}

    def function_of(member: str) -> str | None:
        pattern = r'serviceAccount:\$\{google_service_account\.function\["([^"]+)"\]\.email\}'
        match = re.fullmatch(pattern, member)
        return match.group(1) if match else None

    project_roles = {
        (function_of(i.body["member"]), i.body["role"])
        for i in module.instances("google_project_iam_member")
        if function_of(i.body["member"])
    }
    assert project_roles == {(spec.name, "roles/datastore.user") for spec in topology.FUNCTIONS}

    published = {
        (function_of(i.body["member"]), i.body["topic"])
        for i in module.instances("google_pubsub_topic_iam_member")
        if function_of(i.body["member"])
    }
    assert published == {
        (name, ref("google_pubsub_topic.topic", topic, "name"))
        for name, topics in PUBLISHES_TO.items()
        for topic in topics
    }

    token_creators = {
        (i.body["service_account_id"], function_of(i.body["member"]))
        for i in module.instances("google_service_account_iam_member")
        if function_of(i.body["member"])
    }
    assert token_creators == {
        (ref("google_service_account.function", name, "name"), name) for name in DELEGATES
    }


def test_no_broad_or_authoritative_iam(module: Module) -> None:
    for rtype, name, _body in module.resources:
        assert not rtype.endswith(("_iam_binding", "_iam_policy")), (
            f"{rtype}.{name}: authoritative IAM would remove grants made elsewhere"
        )
    for rtype, _name, _body in module.resources:
        if rtype.endswith("_iam_member"):
            for instance in module.instances(rtype):
                role = instance.body["role"]
                assert role not in {"roles/owner", "roles/editor", "roles/viewer"}, instance.address
                assert not role.endswith(".admin"), instance.address


def test_sweep_is_ticked_by_cloud_scheduler_on_the_topology_schedule(module: Module) -> None:
    assert module.local("sweep_topic") == topology.TOPIC_SWEEP
    assert module.local("sweep_schedule") == topology.SWEEP_SCHEDULE
    assert module.local("sweep_stale_s") == topology.SWEEP_STALE_S
    # A tick publishes what falls due until the next one comes, within its delivery's deadline.
    assert module.local("sweep_loop_s") == topology.SWEEP_LOOP_S == 60  # "* * * * *"
    assert module.local("sweep_ack_deadline_s") == topology.function("sweep").ack_deadline_s
    assert topology.function("sweep").ack_deadline_s > topology.SWEEP_LOOP_S
    assert topology.function("sweep").topic == topology.TOPIC_SWEEP
    assert "cloudscheduler.googleapis.com" in module.local("apis")

    jobs = module.instances("google_cloud_scheduler_job")
    assert len(jobs) == 1, [job.address for job in jobs]
    body = jobs[0].body
    assert body["schedule"] == topology.SWEEP_SCHEDULE
    assert body["time_zone"] == "UTC"
    assert body["region"] == "${var.region}"
    assert body["project"] == "${var.project_id}"
    target = only_block(body, "pubsub_target")
    assert target["topic_name"] == ref("google_pubsub_topic.topic", topology.TOPIC_SWEEP, "id")
    assert target["data"] == '${base64encode("{}")}'
    assert "http_target" not in body and "app_engine_http_target" not in body


def test_firestore_rules_and_indexes_are_deployed(module: Module) -> None:
    assert module.local("firestore_rules_path") == "${path.module}/../../firestore.rules"
    assert (INFRA / "firestore.rules").is_file()
    indexes = json.loads((INFRA / "firestore.indexes.json").read_text())
    assert isinstance(indexes["indexes"], list)
    for index in indexes["indexes"]:
        assert {"collectionGroup", "fields"} <= set(index), index
    assert SWEEP_INDEX in indexes["indexes"]
    # firestore.tf creates one google_firestore_index per entry of that file.
    assert module.raw_locals["firestore_indexes"] == (
        '${jsondecode(file("${path.module}/../../firestore.indexes.json")).indexes}'
    )
    (index_resource,) = [
        body for rtype, _name, body in module.resources if rtype == "google_firestore_index"
    ]
    assert index_resource["for_each"] == "${local.firestore_indexes_keys}"
    assert index_resource["collection"] == "${each.value.collectionGroup}"
    assert index_resource["query_scope"] == '${try(each.value.queryScope, "COLLECTION")}'
    assert module.raw_locals["firestore_indexes_keys"].startswith(
        "${{for index in local.firestore_indexes : "
    )
    (fields,) = [d["fields"] for d in index_resource["dynamic"] if "fields" in d]
    assert fields["for_each"] == "${each.value.fields}"
    assert fields["content"][0]["field_path"] == "${fields.value.fieldPath}"
    assert fields["content"][0]["order"] == "${try(fields.value.order, null)}"
    assert module.instances("google_firestore_database")
    assert module.instances("google_firebaserules_release")[0].body["name"] == "cloud.firestore"
    rules = (INFRA / "firestore.rules").read_text()
    assert "allow read, write: if false;" in rules  # everything not matched above is denied


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_environment_passes_every_variable_the_module_needs(module: Module, env: str) -> None:
    root = Module.load(INFRA / "environments" / env)
    call = root.modules["leadrun"]
    assert call["source"] == "../../modules/leadrun"
    passed = set(call) - {"source"}
    required = {name for name, body in module.variables.items() if "default" not in body}
    assert required <= passed, f"{env} does not pass {sorted(required - passed)}"
    assert passed <= set(module.variables), (
        f"{env} passes unknown {sorted(passed - set(module.variables))}"
    )
    # Everything the environment needs without a default is set by infra/deploy.sh apply.
    env_required = {name for name, body in root.variables.items() if "default" not in body}
    assert env_required <= DEPLOY_VARIABLES
    deploy = (INFRA / "deploy.sh").read_text()
    for name in DEPLOY_VARIABLES - {"source_bucket", "source_objects"}:
        assert f'-var="{name}=' in deploy, name


@pytest.mark.skipif(shutil.which("terraform") is None, reason="no terraform binary")
def test_terraform_is_formatted() -> None:
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", str(INFRA)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
