"""Copilot backends: the deterministic rules (default) and an OpenAI-compatible LLM.

Both take a :class:`CaseContext` and return a validated :class:`Brief`. The LLM
backend speaks the chat-completions protocol over httpx (OpenAI, Azure-compatible
gateways, vLLM, Ollama, LiteLLM...), asks for a JSON object, and validates the
answer with the same pydantic model the rules produce. One call is retried with
tenacity on timeouts, connection errors, 429 and 5xx; what is left after that is
reported as :class:`CopilotBackendError` with ``transient`` set, and the handler
turns it into the runtime's transient or permanent error.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from workers.case_copilot.models import Brief, CaseContext, RecommendedAction, RiskFlag
from workers.case_copilot.rules import VERSION as RULES_VERSION
from workers.case_copilot.rules import rules_brief
from workers.redact import scrub
from workers.settings import Settings

PROMPT_VERSION = "prompt-2026.11.1"
"""Stored with every LLM brief; bump it when SYSTEM_PROMPT changes."""

SYSTEM_PROMPT = """\
You are Case Copilot for a judgment-enforcement team in the United States.
You receive one enforcement case as JSON: the case (stage, tier, balance, asset flags),
the judgment, the plaintiff (no contact details), the collectability score breakdown,
the recent timeline, open enforcement actions, payments, and the planner's inputs.
Write a brief for the operator who works the case next. Be factual; use only the data given.

Answer with ONE JSON object and nothing else, with exactly these keys:
  "summary": string, 2-4 sentences: who owes what, where the case stands, what matters now.
  "risk_flags": array of {"code": snake_case string, "severity": "low"|"medium"|"high",
                "detail": string}; empty when there is no risk worth flagging.
  "recommended_actions": array (1-5) of {"action": snake_case string, "reason": string,
                "priority": integer 1-10, 1 = most urgent}; prefer the enforcement devices
                asset_search, information_subpoena, bank_levy, wage_garnishment,
                marshal_execution, uncollectible_review, monitor.
"""


@dataclass(frozen=True)
class BackendResult:
    brief: Brief
    backend: str
    model: str | None
    version: str
    latency_ms: int


class CopilotBackendError(Exception):
    """The backend could not produce a brief; ``transient`` says whether to retry the job.

    The message is scrubbed: an LLM's error body may echo the Authorization header.
    """

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(scrub(message))
        self.transient = transient


class CopilotBackend(Protocol):
    name: str

    def brief(self, ctx: CaseContext) -> BackendResult: ...


class RulesBackend:
    """The default: deterministic, offline, instant."""

    name = "rules"

    def brief(self, ctx: CaseContext) -> BackendResult:
        started = time.perf_counter()
        brief = rules_brief(ctx)
        elapsed = int((time.perf_counter() - started) * 1000)
        return BackendResult(brief, self.name, None, RULES_VERSION, elapsed)


# --- the chat-completions wire format (only what we read) ---


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    content: str | None = None


class _Choice(BaseModel):
    model_config = ConfigDict(extra="ignore")
    message: _Message
    finish_reason: str | None = None


class _Completion(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    choices: list[_Choice] = Field(min_length=1)


class _LLMBrief(BaseModel):
    """What the model must return; inputs_used is filled in from the context we sent."""

    model_config = ConfigDict(extra="ignore")
    summary: str = Field(min_length=1, max_length=2000)
    risk_flags: list[RiskFlag] = Field(default_factory=list, max_length=20)
    recommended_actions: list[RecommendedAction] = Field(min_length=1, max_length=10)


class _Retryable(Exception):
    pass


def _strip_fences(text: str) -> str:
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    return body.strip()


class OpenAICompatibleBackend:
    """Chat completions over HTTP, JSON output validated with pydantic."""

    name = "openai_compatible"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_attempts: int = 3,
        retry_wait_max: float = 2.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._max_attempts = max_attempts
        self._retry_wait_max = retry_wait_max
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(
            base_url=self.base_url, timeout=timeout, headers=headers, transport=transport
        )

    def close(self) -> None:
        self._client.close()

    def _request_body(self, ctx: CaseContext) -> dict[str, Any]:
        return {
            "model": self.model,
            "temperature": 0,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": ctx.model_dump_json()},
            ],
        }

    def _call_once(self, body: dict[str, Any]) -> _Completion:
        try:
            response = self._client.post("/chat/completions", json=body)
        except httpx.TimeoutException as exc:
            raise _Retryable(f"LLM request timed out: {exc}") from exc
        except httpx.TransportError as exc:
            raise _Retryable(f"LLM connection failed: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retryable(f"LLM answered HTTP {response.status_code}")
        if response.status_code >= 400:
            raise CopilotBackendError(
                f"LLM refused the request: HTTP {response.status_code}: {response.text[:200]}",
                transient=False,
            )
        try:
            return _Completion.model_validate_json(response.content)
        except ValidationError as exc:
            raise CopilotBackendError(
                f"LLM response is not a chat completion: {exc.errors()[0]['msg']}",
                transient=True,
            ) from None

    def _call(self, body: dict[str, Any]) -> _Completion:
        retrying = Retrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=wait_exponential(multiplier=0.2, max=self._retry_wait_max),
            retry=retry_if_exception(lambda e: isinstance(e, _Retryable)),
            reraise=False,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._call_once(body)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise CopilotBackendError(
                f"{last} (after {self._max_attempts} attempts)", transient=True
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def brief(self, ctx: CaseContext) -> BackendResult:
        started = time.perf_counter()
        completion = self._call(self._request_body(ctx))
        content = completion.choices[0].message.content or ""
        try:
            parsed = _LLMBrief.model_validate(json.loads(_strip_fences(content)))
        except (ValueError, ValidationError) as exc:
            detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            raise CopilotBackendError(
                f"LLM output is not a valid brief: {detail}", transient=True
            ) from None
        brief = Brief(
            summary=parsed.summary,
            risk_flags=parsed.risk_flags,
            recommended_actions=parsed.recommended_actions,
            inputs_used=ctx.inputs_used(),
        )
        elapsed = int((time.perf_counter() - started) * 1000)
        return BackendResult(
            brief, self.name, completion.model or self.model, PROMPT_VERSION, elapsed
        )


def backend_from_settings(settings: Settings) -> CopilotBackend:
    """The LLM backend when DRAGONFLY_COPILOT_LLM_BASE_URL is set, else the rules."""
    if not settings.copilot_llm_base_url:
        return RulesBackend()
    key = settings.copilot_llm_api_key
    return OpenAICompatibleBackend(
        base_url=settings.copilot_llm_base_url,
        model=settings.copilot_llm_model,
        api_key=key.get_secret_value() if key is not None else None,
        timeout=settings.copilot_llm_timeout,
        max_attempts=settings.copilot_llm_max_attempts,
    )
