"""The shell reader: every command a command line starts is found, in the words the shell
will use, and what it cannot follow is flagged (so the policy asks instead of allowing)."""

from __future__ import annotations

import pytest

from codeforge.domain.policy.paths import Place
from codeforge.domain.policy.shell import MAX_COMMAND_CHARS, MAX_PARTS, parse_command

D = None  # a word the shell computes


def argvs(command: str) -> list[list[str | None]]:
    return [[w.text for w in p.argv] for p in parse_command(command).parts]


def problems(command: str) -> list[str]:
    script = parse_command(command)
    return list(script.problems) + [m for p in script.parts for m in p.problems]


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("git status", [["git", "status"]]),
        ("git status; rm -rf /", [["git", "status"], ["rm", "-rf", "/"]]),
        ("a && b || c | d |& e & f", [["a"], ["b"], ["c"], ["d"], ["e"], ["f"]]),
        ("a\nb\n\nc", [["a"], ["b"], ["c"]]),
        ("(a; (b)) && { c; d; }", [["a"], ["b"], ["c"], ["d"]]),
        ("git status $(rm -rf /)", [["rm", "-rf", "/"], ["git", "status", D]]),
        ("echo `rm -rf /`", [["rm", "-rf", "/"], ["echo", D]]),
        ("echo \"$(curl x | sh -c 'rm y')\"", [["curl", "x"], [], ["rm", "y"], ["echo", D]]),
        ("diff <(ls) >(rm x)", [["ls"], ["rm", "x"], ["diff", D, D]]),
        ("bash -c 'rm -rf /'", [[], ["rm", "-rf", "/"]]),
        ('sh -ec "curl x; ls"', [[], ["curl", "x"], ["ls"]]),
        ("bash -x -o pipefail -c 'a && b'", [[], ["a"], ["b"]]),
        ("env X=1 Y=2 rm -rf /", [["rm", "-rf", "/"]]),
        ("X=1 rm x", [["rm", "x"]]),
        ("exec rm x", [["rm", "x"]]),
        ("command rm x", [["rm", "x"]]),
        ("command -v rm", [["command"]]),
        ("builtin cd src", [["cd", "src"]]),
        ("nohup nice -n 5 timeout -s KILL 10 stdbuf -oL rm x", [["rm", "x"]]),
        ("time -p rm x", [["rm", "x"]]),
        ("ls | xargs -0 -n1 -I{} rm {}", [["ls"], ["xargs"], ["rm", "{}"]]),
        (
            "find . -name '*.pyc' -exec rm -f {} +",
            [["find", ".", "-name", "*.pyc", "-exec", "rm", "-f", "{}", "+"], ["rm", "-f", "{}"]],
        ),
        ("sudo -u root rm x", [["sudo", "-u", "root", "rm", "x"], ["rm", "x"]]),
        ("watch -n 1 'curl x; ls'", [["watch"], ["curl", "x"], ["ls"]]),
        ("flock /tmp/l -c 'curl x'", [["flock"], ["curl", "x"]]),
        ("flock /tmp/l curl x", [["curl", "x"]]),
        ("busybox rm x", [["rm", "x"]]),
        (
            "if test -f x; then rm x; elif a; then b; else c; fi",
            [["test", "-f", "x"], ["rm", "x"], ["a"], ["b"], ["c"]],
        ),
        # The loop's redirection is kept as a part of its own (it reads `list`).
        ("while read l; do rm $l; done < list", [["read", "l"], ["rm", D], []]),
        ("for f in $(ls); do rm $f; done", [["ls"], ["rm", D]]),
        ("! grep x y", [["grep", "x", "y"]]),
        # Quote removal and expansion as the shell does them.
        ('"r"m x', [["rm", "x"]]),
        ("r''m x", [["rm", "x"]]),
        ("\\rm x", [["rm", "x"]]),
        ("$'\\x72\\155' x", [["rm", "x"]]),
        ("$'\\u0072m' x", [["rm", "x"]]),
        ("{r,}m -rf /", [["rm", "m", "-rf", "/"]]),
        ("echo {a,b{c,d}}e", [["echo", "ae", "bce", "bde"]]),
        ("echo {1..3}", [["echo", "1", "2", "3"]]),
        ("echo '{a,b}' \\{a,b\\}", [["echo", "{a,b}", "{a,b}"]]),
        ("ec\\\nho hi", [["echo", "hi"]]),
        ("echo a#b # a comment; rm x", [["echo", "a#b"]]),
        ('echo "a\\"b" \'c"d\'', [["echo", 'a"b', 'c"d']]),
    ],
)
def test_every_command_is_found_in_the_words_the_shell_uses(
    command: str, expected: list[list[str | None]]
) -> None:
    assert argvs(command) == expected
    assert problems(command) == []


def test_here_documents_are_data_unless_their_delimiter_is_unquoted() -> None:
    literal = "cat <<'EOF' > out.py\nprint($(rm -rf /))\nEOF\nls"
    assert argvs(literal) == [["cat"], ["ls"]]
    expanding = "cat <<EOF > out.py\nprint($(rm -rf /))\nEOF\nls"
    assert argvs(expanding) == [["rm", "-rf", "/"], ["cat"], ["ls"]]
    tabs = "cat <<-EOF\n\t$(curl x)\n\tEOF\nls"
    assert argvs(tabs) == [["curl", "x"], ["cat"], ["ls"]]


def test_a_shell_reading_a_literal_here_document_runs_it_as_a_script() -> None:
    assert argvs("bash <<'EOF'\nrm -rf /\nEOF") == [[], ["rm", "-rf", "/"]]
    assert argvs("sh <<< 'curl x'") == [[], ["curl", "x"]]


@pytest.mark.parametrize(
    "command",
    [
        'echo "unterminated',
        "echo 'unterminated",
        "echo $(ls",
        "echo `ls",
        "( ls",
        "ls )",
        "if true; then ls",
        "for x in a; do ls",
        "{ ls",
        "eval rm -rf /",
        "let x=1",
        "trap 'rm -rf /' EXIT",
        "alias ls='rm -rf /'",
        "shopt -s expand_aliases",
        "hash -p /tmp/evil git",
        "enable -f ./x.so evil",
        "case $x in a) rm y;; esac",
        "f() { rm y; }; f",
        "function f { rm y; }",
        "[[ $x -eq 1 ]]",
        "((x++))",
        "echo $((x + 1))",
        "a[$i]=1",
        "echo ${x:-$(rm y)}",
        "echo ${!name}",
        "$CMD -rf /",
        "$(echo rm) -rf /",
        "/bin/r? -rf /",
        "curl x | sh",
        "curl x | bash -s",
        'bash -c "$X"',
        "PATH=/tmp/evil git status",
        "env PATH=/tmp git status",
        "LD_PRELOAD=/tmp/x.so ls",
        "GIT_EXTERNAL_DIFF='rm -rf /' git diff",
        "PS4='$(rm -rf /)' bash -xc true",
        "export BASH_ENV=./evil.sh",
        "declare -i x=y",
        "printf -v PATH /tmp",
        "read IFS",
        "env 'BASH_FUNC_git%%=() { rm -rf /; }' bash -c 'git status'",
        "env -S 'rm -rf /'",
        "coproc rm x",
        "echo x {fd}>file",
        "for ((i=0; i<3; i++)); do ls; done",
        "xargs --unknown-option rm",
        "timeout --weird 5 rm x",
    ],
)
def test_what_the_reader_cannot_follow_is_flagged(command: str) -> None:
    assert problems(command), command


def test_cd_is_followed_and_a_cd_that_may_not_have_run_keeps_the_old_folder() -> None:
    parts = parse_command("cd src && rm x; cd ..; cd /tmp || true; rm y").parts
    rm_x, rm_y = parts[1], parts[-1]
    assert {c.key for c in rm_x.cwds} == {"", "src"}
    assert {(c.place, c.key) for c in rm_y.cwds} >= {
        (Place.WORKSPACE, ""),
        (Place.WORKSPACE, "src"),
        (Place.ABSOLUTE, "/tmp"),
    }


def test_a_subshell_or_substitution_keeps_its_cd_to_itself() -> None:
    parts = parse_command("(cd sub && make); $(cd x); rm y").parts
    assert [c.key for c in parts[-1].cwds] == [""]


def test_a_computed_cd_makes_the_folder_unknown() -> None:
    parts = parse_command("cd $DIR && rm x").parts
    assert any(c.place is Place.UNKNOWN for c in parts[-1].cwds)


def test_xargs_and_find_exec_get_arguments_at_run_time() -> None:
    parts = parse_command("ls | xargs rm; find . -exec rm {} \\;").parts
    assert [p.open_args for p in parts] == [False, False, True, False, True]


def test_redirections_are_kept_with_their_targets() -> None:
    [part] = parse_command("cmd > out 2>&1 >> log < in &> all 3<> rw").parts
    ops = [(r.fd, r.op, r.target.text if r.target else None) for r in part.redirects]
    assert ops == [
        ("", ">", "out"),
        ("2", ">&", "1"),
        ("", ">>", "log"),
        ("", "<", "in"),
        ("", "&>", "all"),
        ("3", "<>", "rw"),
    ]
    assert [r.writes for r in part.redirects] == [True, False, True, False, True, True]


def test_too_long_too_many_or_nul_is_not_read() -> None:
    assert parse_command("x" * (MAX_COMMAND_CHARS + 1)).problems
    assert parse_command("ls\0rm").problems
    many = parse_command("; ".join(["true"] * (MAX_PARTS + 5)))
    assert many.problems
    nested = parse_command("bash -c " * 40 + "ls")
    assert nested.problems or all(not p.argv or p.program != "ls" for p in nested.parts)


def test_brace_expansion_that_would_explode_is_not_listed() -> None:
    [part] = parse_command("echo {1..100000}").parts
    assert part.argv[1].text is None  # computed: anything


def test_a_word_with_a_tilde_names_the_home_folder() -> None:
    [part] = parse_command("cat ~/.ssh/id_rsa '~/x'").parts
    assert [w.home for w in part.argv] == [False, True, False]
