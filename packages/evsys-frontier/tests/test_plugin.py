"""Plugin wiring: light hooks, registration without SDKs, `evsys plugins` / `evsys list`, schemas."""

from __future__ import annotations

import json
import subprocess
import sys

from evsys_sdk.plugins.registry import registry, schema_for

SDKS = ("anthropic", "openai", "google.genai", "httpx", "httpx2")
MODULES = (
    "evsys_frontier, evsys_frontier.hooks, evsys_frontier.claude, evsys_frontier.openai_inference, "
    "evsys_frontier.gemini, evsys_frontier.judge, evsys_frontier.config, evsys_frontier.testing"
)


def _run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_registered_modules_import_no_provider_sdk() -> None:
    code = f"import sys, {MODULES}; print(sorted(m for m in {SDKS!r} if m in sys.modules))"
    assert _run(code) == "[]"


def test_every_kind_registers_without_its_sdk() -> None:
    """With every SDK made unimportable, the kinds still list, and building one names the extra."""
    code = (
        "import sys\n"
        "for m in ('anthropic', 'openai', 'google.genai'): sys.modules[m] = None\n"
        "from evsys_sdk.plugins.registry import registry\n"
        "kinds = registry('inference_client').list()\n"
        "print([k for k in ('claude', 'openai', 'gemini') if k in kinds], registry('verifier').has('llm_judge'))\n"
        "try:\n"
        "    registry('inference_client').get('gemini')()\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = _run(code).splitlines()
    assert out[0] == "['claude', 'openai', 'gemini'] True"
    assert 'pip install "evsys-frontier[gemini]" (from this checkout: pip install "' in out[1]
    assert out[1].endswith('packages/evsys-frontier[gemini]")')


def test_evsys_cli_lists_the_plugin_and_its_kinds() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "evsys_sdk.cli", "plugins"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "frontier  evsys-frontier 0.1.0  ok  evsys_frontier.hooks" in proc.stdout


def test_sources_and_schemas() -> None:
    for kind in ("claude", "openai", "gemini"):
        assert registry("inference_client").source_of(kind).startswith("evsys-frontier")
        schema = schema_for("inference_client", kind)
        assert schema["additionalProperties"] is False
        assert {"model", "api_key_env", "base_url", "timeout_s", "extra_headers"} <= set(schema["properties"])
        assert "api_key" not in schema["properties"]  # keys come from the environment only
    judge = schema_for("verifier", "llm_judge")
    json.dumps(judge)
    assert {"judge", "rubric", "scale"} <= set(judge["properties"])


def test_fake_server_runs_from_the_shell() -> None:
    from evsys_sdk.plugins.registry import registry as reg

    proc = subprocess.Popen([sys.executable, "-m", "evsys_frontier.testing"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert reg("inference_client").get("openai")(base_url=url + "/v1").generate(prompt="hi") == "You said: hi"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
