"""``scenario-upscale doctor``: which of the plausible answers does *this* Scenario account give?

Where the API contract is unconfirmed, the emulator can give several plausible answers (its
profiles, named in ``Behaviour``). The doctor asks the live API once, in order: auth and project,
one model and its ``inputs[]``, a tiny upload and a large-body probe, the dry run; then, only when
asked to spend, one real job of the cheapest upscale: its submit, its polling, the listing and
echo that reconciliation relies on, and its download with and without originals.

Two readings of each answer:
- the *wire*, read here with raw httpx (statuses, body shapes and byte counts that the SDK and our
  client hide or reject), which names the behaviours the API shows;
- the *engine's own code* (dry-run reader, reconciliation search, listing, collect) run on the same
  account, which says whether the engine copes with them.

Nothing here prints: checks are reported through a callback, so the command layer owns the
terminal. Secrets are read in one place (``Session.open``) and never reach a check or the JSON.

Example:
    >>> async def main() -> None:
    ...     settings = DoctorSettings(api_key=SecretStr("k"), api_secret=SecretStr("s"))
    ...     findings = await run_doctor(settings, confirm=lambda cost: False, report=print)
    ...     write_findings(findings, Path("scenario-doctor.json"))
"""

from __future__ import annotations

from collections.abc import Callable

from scenario_upscale.doctor.findings import (
    Behaviour,
    Check,
    DoctorSettings,
    Findings,
    Observation,
    Verdict,
    write_findings,
)
from scenario_upscale.doctor.free_checks import (
    probe_auth,
    probe_dry_run,
    probe_model,
    probe_uploads,
)
from scenario_upscale.doctor.job_checks import (
    probe_download,
    probe_echo,
    probe_listing,
    probe_polling,
    probe_submit,
)
from scenario_upscale.doctor.session import Session, Stop

__all__ = [
    "Behaviour",
    "Check",
    "DoctorSettings",
    "Findings",
    "Observation",
    "Verdict",
    "run_doctor",
    "write_findings",
]


async def run_doctor(
    settings: DoctorSettings,
    *,
    confirm: Callable[[float], bool],
    report: Callable[[Check], None],
) -> Findings:
    """Run the checks in order; stop at the first failure that the next ones depend on.

    Args:
        settings: Credentials, model, and whether (and how much) to spend.
        confirm: Asked with the dry-run price before the one real submit; False skips it.
        report: Called with each check as soon as it is decided.

    Returns:
        The findings; ``assumptions_hold`` says whether the engine copes with this account.
    """
    findings = Findings(
        base_url=settings.base_url, project_id=settings.project_id, model_id=settings.model_id
    )
    async with Session(settings, report, findings) as session:
        try:
            for probe in (probe_auth, probe_model, probe_uploads, probe_dry_run):
                await probe(session)
            if await _may_submit(session, confirm):
                for probe in (
                    probe_submit,
                    probe_polling,
                    probe_listing,
                    probe_echo,
                    probe_download,
                ):
                    await probe(session)
        except Stop as stop:
            if not findings.checks or findings.checks[-1].verdict != "FAIL":
                session.check("stopped", "FAIL", str(stop))
    return findings


async def _may_submit(s: Session, confirm: Callable[[float], bool]) -> bool:
    step = "spend"
    cost = s.cost if s.cost is not None else 0.0
    if not s.settings.submit:
        s.check(step, "skipped", "nothing submitted, nothing spent (--submit runs one real job)")
        return False
    if cost > s.settings.max_creative_units:
        raise s.fail(
            step,
            f"one job of {s.settings.model_id} costs {cost:g} creative units, above "
            f"--max-creative-units {s.settings.max_creative_units:g}: nothing was submitted",
        )
    if not confirm(cost):
        s.check(step, "skipped", "not confirmed: nothing submitted, nothing spent")
        return False
    limit = s.settings.max_creative_units
    s.check(
        step, "ok", f"one job at {cost:g} creative units (limit {limit:g})", creative_units=cost
    )
    return True
