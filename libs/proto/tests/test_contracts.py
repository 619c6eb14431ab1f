"""The generated contracts: services and their streaming kinds, message round trips, codegen."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
PROTO_ROOT = ROOT / "proto"
GENERATED_ROOT = ROOT / "libs" / "proto" / "src" / "trunkline" / "proto"
PACKAGES = ("common", "stt", "tts", "llm", "context", "hitl", "gateway", "events")
CALL_CONTEXT = "trunkline.common.v1.CallContext"

UNARY = (False, False)
SERVER_STREAM = (False, True)
CLIENT_STREAM = (True, False)
BIDI = (True, True)

# module, service, {rpc: (client streaming, server streaming)}
SERVICES: list[tuple[str, str, dict[str, tuple[bool, bool]]]] = [
    (
        "stt.v1.stt",
        "SpeechToText",
        {"StreamingRecognize": BIDI, "Recognize": UNARY},
    ),
    (
        "tts.v1.tts",
        "TextToSpeech",
        {"StreamingSynthesize": BIDI, "ListVoices": UNARY},
    ),
    (
        "llm.v1.llm",
        "LanguageModel",
        {"Generate": SERVER_STREAM, "CountTokens": UNARY, "Prefill": UNARY},
    ),
    (
        "context.v1.context",
        "ContextService",
        {
            "Resolve": UNARY,
            "StoreAnswer": UNARY,
            "Ingest": CLIENT_STREAM,
            "ListSources": UNARY,
            "DeleteSource": UNARY,
            "ListCacheEntries": UNARY,
            "DeleteCacheEntries": UNARY,
        },
    ),
    (
        "hitl.v1.hitl",
        "HumanLoop",
        {
            "Escalate": UNARY,
            "RequestApproval": UNARY,
            "WaitDecision": SERVER_STREAM,
            "ListQueue": UNARY,
            "Decide": UNARY,
            "TakeOver": UNARY,
            "Claim": UNARY,
            "HandBack": UNARY,
            "Cancel": UNARY,
            "OfferCallback": UNARY,
        },
    ),
    (
        "gateway.v1.admin",
        "GatewayAdmin",
        {"ListCalls": UNARY, "GetCall": UNARY, "HangUp": UNARY, "Transfer": UNARY},
    ),
]

# RPCs that are not tenant-scoped (no `context` field).
NOT_TENANT_SCOPED = {"trunkline.tts.v1.TextToSpeech.ListVoices"}

EVENTS = (
    "CallStarted",
    "CallEnded",
    "TurnCompleted",
    "EscalationRequested",
    "ApprovalRequested",
    "ApprovalDecided",
    "CostEntry",
)


def pb2(name: str) -> ModuleType:
    return importlib.import_module(f"trunkline.proto.{name}_pb2")


def proto_modules() -> list[str]:
    """Every .proto file as a module stem relative to trunkline.proto, e.g. "stt.v1.stt"."""
    files = sorted((PROTO_ROOT / "trunkline").rglob("*.proto"))
    return [".".join(p.relative_to(PROTO_ROOT / "trunkline").with_suffix("").parts) for p in files]


def message_classes() -> list[Any]:
    """One pytest param per generated message class, with its dotted name as the id."""
    found: list[Any] = []
    for name in proto_modules():
        module = pb2(name)
        for message_name in module.DESCRIPTOR.message_types_by_name:
            cls = getattr(module, message_name)
            found.append(pytest.param(cls, id=f"{name}.{message_name}"))
    return found


# Descriptors are typed as a union of the pure-Python and upb classes: read them as Any.
def sample_scalar(field: Any) -> Any:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return f"{field.name}-value"
    if kind == FieldDescriptor.TYPE_BYTES:
        return b"\x00\x01\xfe"
    if kind == FieldDescriptor.TYPE_BOOL:
        return True
    if kind == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values[-1].number
    if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return 0.5
    return 7


def is_map(field: Any) -> bool:
    message_type = field.message_type
    return message_type is not None and bool(message_type.GetOptions().map_entry)


def populate(message: Message, depth: int = 0) -> int:
    """Set every field (the first member of each oneof); return how many were set."""
    count = 0
    fields: list[Any] = list(message.DESCRIPTOR.fields)
    for field in fields:
        oneof = field.containing_oneof
        if oneof is not None and oneof.fields[0] is not field:
            continue
        value: Any = getattr(message, field.name)
        if is_map(field):
            value["key"] = sample_scalar(field.message_type.fields_by_name["value"])
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth > 8:
                continue
            child = value.add() if field.is_repeated else value
            populate(child, depth + 1)
            if not field.is_repeated:
                child.SetInParent()
        elif field.is_repeated:
            value.append(sample_scalar(field))
        else:
            setattr(message, field.name, sample_scalar(field))
        count += 1
    return count


@pytest.mark.parametrize(("module_name", "service_name", "rpcs"), SERVICES)
def test_service_has_expected_rpcs_and_streaming_kinds(
    module_name: str, service_name: str, rpcs: dict[str, tuple[bool, bool]]
) -> None:
    service = pb2(module_name).DESCRIPTOR.services_by_name[service_name]
    found = {m.name: (m.client_streaming, m.server_streaming) for m in service.methods}
    assert found == rpcs


@pytest.mark.parametrize(("module_name", "service_name", "rpcs"), SERVICES)
def test_grpc_module_offers_stub_servicer_and_registration(
    module_name: str, service_name: str, rpcs: dict[str, tuple[bool, bool]]
) -> None:
    grpc_module = importlib.import_module(f"trunkline.proto.{module_name}_pb2_grpc")
    stub = getattr(grpc_module, f"{service_name}Stub")
    servicer = getattr(grpc_module, f"{service_name}Servicer")
    assert callable(getattr(grpc_module, f"add_{service_name}Servicer_to_server"))
    assert all(callable(getattr(servicer, rpc)) for rpc in rpcs)
    assert stub.__module__ == f"trunkline.proto.{module_name}_pb2_grpc"


@pytest.mark.parametrize(("module_name", "service_name", "rpcs"), SERVICES)
def test_tenant_scoped_requests_carry_call_context_as_field_one(
    module_name: str, service_name: str, rpcs: dict[str, tuple[bool, bool]]
) -> None:
    service = pb2(module_name).DESCRIPTOR.services_by_name[service_name]
    for method in service.methods:
        if method.full_name in NOT_TENANT_SCOPED:
            assert "context" not in method.input_type.fields_by_name
            continue
        field = method.input_type.fields_by_name.get("context")
        assert field is not None, method.full_name
        assert field.number == 1, method.full_name
        assert field.message_type.full_name == CALL_CONTEXT, method.full_name


def test_every_event_carries_id_time_and_call_context() -> None:
    events = pb2("events.v1.events").DESCRIPTOR.message_types_by_name
    for name in EVENTS:
        fields = events[name].fields_by_name
        assert fields["event_id"].number == 1, name
        assert fields["occurred_at"].message_type.full_name == "google.protobuf.Timestamp", name
        assert fields["context"].message_type.full_name == CALL_CONTEXT, name


def test_every_proto_file_has_generated_modules() -> None:
    names = proto_modules()
    assert {n.split(".")[0] for n in names} == set(PACKAGES)
    for name in names:
        assert (GENERATED_ROOT / f"{name.replace('.', '/')}_pb2.py").is_file(), name
        assert (GENERATED_ROOT / f"{name.replace('.', '/')}_pb2.pyi").is_file(), name


@pytest.mark.parametrize("cls", message_classes())
def test_every_message_round_trips_with_all_fields_set(cls: type[Message]) -> None:
    message = cls()
    expected = populate(message)
    assert expected == len(message.ListFields()) > 0
    decoded = cls.FromString(message.SerializeToString())
    assert decoded == message
    assert len(decoded.ListFields()) == expected


def test_oneof_members_replace_each_other_through_the_wire() -> None:
    stt = pb2("stt.v1.stt")
    first = stt.StreamingRecognizeRequest(config=stt.RecognitionConfig(language="en-US"))
    first.context.tenant_id = "acme"
    first.audio = b"\x01\x02"
    decoded = stt.StreamingRecognizeRequest.FromString(first.SerializeToString())
    assert decoded.WhichOneof("request") == "audio"
    assert decoded.context.tenant_id == "acme"
    assert not decoded.HasField("config")


def test_optional_sampling_fields_distinguish_zero_from_unset() -> None:
    llm = pb2("llm.v1.llm")
    unset = llm.SamplingParams.FromString(llm.SamplingParams().SerializeToString())
    zero = llm.SamplingParams.FromString(llm.SamplingParams(temperature=0.0).SerializeToString())
    assert not unset.HasField("temperature")
    assert zero.HasField("temperature")
    assert zero.temperature == 0.0


def test_generated_code_imports_only_trunkline_proto_modules() -> None:
    names = "|".join(PACKAGES)
    bad_import = re.compile(
        rf"^\s*(from\s+trunkline\.({names})\.v\d+\b|import\s+trunkline\.({names})\.v\d+\b)",
        re.MULTILINE,
    )
    bad_reference = re.compile(rf"(?<![\w./])trunkline\.({names})\.v\d+\.\w+_pb2")
    files = [p for p in GENERATED_ROOT.rglob("*") if p.suffix in (".py", ".pyi")]
    assert len(files) > 4 * len(PACKAGES)
    for path in files:
        text = path.read_text()
        assert not bad_import.search(text), path
        assert not bad_reference.search(text), path


def test_wire_names_are_untouched_by_the_rewrite() -> None:
    llm = pb2("llm.v1.llm")
    assert llm.GenerateRequest.DESCRIPTOR.full_name == "trunkline.llm.v1.GenerateRequest"
    assert llm.DESCRIPTOR.name == "trunkline/llm/v1/llm.proto"
    assert llm.GenerateRequest.__module__ == "trunkline.proto.llm.v1.llm_pb2"
    grpc_source = (GENERATED_ROOT / "llm" / "v1" / "llm_pb2_grpc.py").read_text()
    assert "'/trunkline.llm.v1.LanguageModel/Generate'" in grpc_source


# --- tools/gen_proto.py ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gen_proto() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "tools" / "gen_proto.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rewrite_changes_module_references_only(gen_proto: ModuleType) -> None:
    source = (
        "from trunkline.common.v1 import call_pb2 as _call_pb2\n"
        "import trunkline.stt.v1.stt_pb2\n"
        "_builder.Build(DESCRIPTOR, 'trunkline.llm.v1.llm_pb2', _globals)\n"
        "x: trunkline.common.v1.call_pb2.CallContext\n"
        "channel.unary_unary('/trunkline.llm.v1.LanguageModel/CountTokens')\n"
        "generic_handler('trunkline.llm.v1.LanguageModel', handlers)\n"
        "b'\\x12\\x10trunkline.stt.v1\\x1a'\n"
    )
    expected = (
        "from trunkline.proto.common.v1 import call_pb2 as _call_pb2\n"
        "import trunkline.proto.stt.v1.stt_pb2\n"
        "_builder.Build(DESCRIPTOR, 'trunkline.proto.llm.v1.llm_pb2', _globals)\n"
        "x: trunkline.proto.common.v1.call_pb2.CallContext\n"
        "channel.unary_unary('/trunkline.llm.v1.LanguageModel/CountTokens')\n"
        "generic_handler('trunkline.llm.v1.LanguageModel', handlers)\n"
        "b'\\x12\\x10trunkline.stt.v1\\x1a'\n"
    )
    rewritten = gen_proto.rewrite_imports(source, ["common", "llm", "stt"])
    assert rewritten == expected
    assert gen_proto.rewrite_imports(rewritten, ["common", "llm", "stt"]) == expected


def test_generate_replaces_stale_files_and_is_idempotent(
    gen_proto: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    stale = out / "gone" / "v1" / "old_pb2.py"
    stale.parent.mkdir(parents=True)
    stale.write_text("stale = True\n")
    first = gen_proto.generate(PROTO_ROOT, out)
    snapshot = {p: p.read_text() for p in first}
    second = gen_proto.generate(PROTO_ROOT, out)
    assert not stale.exists()
    assert sorted(second) == sorted(first)
    assert {p: p.read_text() for p in second} == snapshot
    assert (out / "stt" / "__init__.py").is_file()
    assert (out / "stt" / "v1" / "__init__.py").is_file()
    installed = {p.relative_to(out) for p in first}
    assert installed == {
        p.relative_to(GENERATED_ROOT)
        for p in GENERATED_ROOT.rglob("*_pb2*")
        if p.suffix in (".py", ".pyi")
    }


def test_generate_fails_with_protoc_message_and_keeps_previous_output(
    gen_proto: ModuleType, tmp_path: Path
) -> None:
    broken = tmp_path / "proto" / "trunkline" / "bad" / "v1"
    broken.mkdir(parents=True)
    (broken / "bad.proto").write_text(
        'syntax = "proto3";\npackage trunkline.bad.v1;\nmessage Bad { NoSuchType x = 1; }\n'
    )
    out = tmp_path / "out"
    kept = out / "bad" / "v1" / "bad_pb2.py"
    kept.parent.mkdir(parents=True)
    kept.write_text("previous = True\n")
    with pytest.raises(gen_proto.GenerationError, match="NoSuchType"):
        gen_proto.generate(tmp_path / "proto", out)
    assert kept.read_text() == "previous = True\n"
    assert gen_proto.main(["--proto-root", str(tmp_path / "proto"), "--out", str(out)]) == 1
