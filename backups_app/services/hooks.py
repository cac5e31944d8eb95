"""Pre/post hooks from ``settings.BACKUP_HOOKS`` (e.g. stop app workers around a restore).
Each hook is an argument list run without a shell; its output goes to the run's log."""

import json
import subprocess

from django.conf import settings

from backups_app.errors import ConfigurationError, HookFailed

STAGES = ("pre_backup", "post_backup", "pre_restore", "post_restore")
HOOK_TIMEOUT = 600


def all_hooks():
    """BACKUP_HOOKS as a dict: the environment gives JSON text, tests and settings files a dict."""
    hooks = settings.BACKUP_HOOKS
    if isinstance(hooks, str):
        try:
            hooks = json.loads(hooks or "{}")
        except ValueError as exc:
            raise ConfigurationError(f"BACKUP_HOOKS is not valid JSON ({exc}); no backup or restore runs "
                                     "until it is fixed.") from None
    if not isinstance(hooks, dict):
        raise ConfigurationError("BACKUP_HOOKS must be a JSON object: {stage: [hook, ...]}.")
    return hooks


def configured(stage):
    hooks = all_hooks().get(stage, [])
    if not isinstance(hooks, list):
        raise ConfigurationError(f"BACKUP_HOOKS[{stage!r}] must be a list of hooks.")
    for hook in hooks:
        command = hook.get("command") if isinstance(hook, dict) else None
        if not (isinstance(command, list) and command and all(isinstance(a, str) for a in command)):
            raise ConfigurationError(f"BACKUP_HOOKS[{stage!r}]: each hook needs 'command' as a list of strings.")
        if hook.get("on_error", "fail") not in ("fail", "continue"):
            raise ConfigurationError(f"BACKUP_HOOKS[{stage!r}]: on_error must be 'fail' or 'continue'.")
        timeout = hook.get("timeout", HOOK_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigurationError(f"BACKUP_HOOKS[{stage!r}]: timeout must be a positive number of seconds.")
    return hooks


def run_hooks(stage, recorder):
    """Run the stage's hooks. A failing hook with on_error='fail' raises HookFailed, except in
    post stages, which always run every hook and only log failures (whatever the failure)."""
    if stage.startswith("post_"):
        try:
            _run(stage, recorder)
        except Exception as exc:
            recorder.log(f"hooks {stage} could not run: {exc}")
        return
    _run(stage, recorder)


def _run(stage, recorder):
    for hook in configured(stage):
        command = hook["command"]
        try:
            done = subprocess.run(command, capture_output=True, timeout=hook.get("timeout", HOOK_TIMEOUT))
            output = (done.stdout + done.stderr).decode("utf-8", "replace").strip()
            failure = f"exit {done.returncode}" if done.returncode else None
        except (OSError, subprocess.TimeoutExpired) as exc:
            output, failure = "", str(exc)
        recorder.log(f"hook {stage} {command[0]}: {failure or 'ok'}" + (f"\n{output[-2000:]}" if output else ""))
        if failure and hook.get("on_error", "fail") == "fail" and stage.startswith("pre_"):
            raise HookFailed(f"{stage} hook {command[0]} failed ({failure}); nothing was changed.")
