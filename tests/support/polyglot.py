"""A small repository in every language the repo map reads, made by the tests.

Each language has a library file defining a class/type and a function, and a
user file in the same language that calls them, so tests can check that
definitions are found, that references resolve across files, and that the
ranking puts the library first.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

# language -> {path: source}; in each, `Widget`/`make_widget` (or the language's
# spelling of them) are defined in the first file and used in the second.
SOURCES: dict[str, dict[str, str]] = {
    "python": {
        "py/widgets.py": (
            "import os\n\nLIMIT = 10\n\n\nclass Widget:\n    def render_widget(self, depth):\n"
            "        return os.path.join('w', str(depth))\n\n\n"
            "def make_widget(name):\n    return Widget()\n"
        ),
        "py/app.py": (
            "from widgets import Widget, make_widget\n\n\n"
            "def main_entry():\n    widget = make_widget('a')\n    return widget.render_widget(1)\n"
        ),
    },
    "javascript": {
        "js/widgets.js": (
            "export class Widget {\n  renderWidget(depth) {\n    return depth;\n  }\n}\n\n"
            "export function makeWidget(name) {\n  return new Widget();\n}\n"
        ),
        "js/app.js": (
            "import { makeWidget } from './widgets.js';\n\n"
            "function mainEntry() {\n  const w = makeWidget('a');\n  return w.renderWidget(1);\n}\n"
        ),
    },
    "typescript": {
        "ts/widgets.ts": (
            "export interface WidgetShape {\n  depth: number;\n}\n\n"
            "export class Widget implements WidgetShape {\n  depth = 0;\n"
            "  renderWidget(depth: number): string {\n    return String(depth);\n  }\n}\n\n"
            "export function makeWidget(name: string): Widget {\n  return new Widget();\n}\n"
        ),
        "ts/app.ts": (
            "import { makeWidget, WidgetShape } from './widgets';\n\n"
            "export function mainEntry(): WidgetShape {\n  const w = makeWidget('a');\n"
            "  w.renderWidget(1);\n  return w;\n}\n"
        ),
    },
    "tsx": {
        "tsx/Panel.tsx": (
            "export function WidgetPanel(props: { title: string }) {\n"
            "  return <div>{props.title}</div>;\n}\n"
        ),
        "tsx/Page.tsx": (
            "import { WidgetPanel } from './Panel';\n\n"
            'export function MainPage() {\n  return <WidgetPanel title="x" />;\n}\n'
        ),
    },
    "go": {
        "go/widgets.go": (
            'package widgets\n\nimport "fmt"\n\ntype Widget struct {\n\tDepth int\n}\n\n'
            "func (w *Widget) RenderWidget(depth int) string {\n"
            "\treturn fmt.Sprint(depth)\n}\n\n"
            "func MakeWidget(name string) *Widget {\n\treturn &Widget{}\n}\n"
        ),
        "go/app.go": (
            'package widgets\n\nfunc MainEntry() string {\n\tw := MakeWidget("a")\n'
            "\treturn w.RenderWidget(1)\n}\n"
        ),
    },
    "rust": {
        "rs/widgets.rs": (
            "pub struct Widget {\n    depth: u32,\n}\n\nimpl Widget {\n"
            "    pub fn render_widget(&self, depth: u32) -> String {\n"
            '        format!("{}", depth)\n    }\n}\n\n'
            "pub fn make_widget(name: &str) -> Widget {\n    Widget { depth: 0 }\n}\n"
        ),
        "rs/main.rs": (
            "mod widgets;\nuse crate::widgets::make_widget;\n\n"
            'fn main_entry() -> String {\n    let w = make_widget("a");\n'
            "    w.render_widget(1)\n}\n"
        ),
    },
    "java": {
        "java/Widget.java": (
            "package shop;\n\npublic class Widget {\n"
            "    public String renderWidget(int depth) {\n        return String.valueOf(depth);\n"
            "    }\n\n    public static Widget makeWidget(String name) {\n"
            "        return new Widget();\n    }\n}\n"
        ),
        "java/App.java": (
            "package shop;\n\nimport shop.Widget;\n\npublic class App {\n"
            '    public String mainEntry() {\n        Widget w = Widget.makeWidget("a");\n'
            "        return w.renderWidget(1);\n    }\n}\n"
        ),
    },
    "c": {
        "c/widgets.h": (
            "#ifndef WIDGETS_H\n#define WIDGETS_H\n\ntypedef struct widget_s {\n  int depth;\n"
            "} widget_t;\n\nwidget_t *make_widget(const char *name);\n"
            "int render_widget(widget_t *w, int depth);\n\n#endif\n"
        ),
        "c/widgets.c": (
            '#include "widgets.h"\n#include <stdlib.h>\n\n'
            "widget_t *make_widget(const char *name) {\n"
            "  return calloc(1, sizeof(widget_t));\n}\n\n"
            "int render_widget(widget_t *w, int depth) {\n  return depth;\n}\n"
        ),
        "c/app.c": (
            '#include "widgets.h"\n\nint main_entry(void) {\n'
            '  widget_t *w = make_widget("a");\n  return render_widget(w, 1);\n}\n'
        ),
    },
    "cpp": {
        "cpp/widgets.hpp": (
            "#pragma once\n#include <string>\n\nnamespace shop {\nclass Widget {\n public:\n"
            "  std::string renderWidget(int depth);\n};\n\n"
            "Widget makeWidget(const std::string &name);\n}  // namespace shop\n"
        ),
        "cpp/widgets.cpp": (
            '#include "widgets.hpp"\n\nnamespace shop {\n'
            "std::string Widget::renderWidget(int depth) {\n  return std::to_string(depth);\n}\n\n"
            "Widget makeWidget(const std::string &name) {\n  return Widget();\n}\n}\n"
        ),
        "cpp/app.cpp": (
            '#include "widgets.hpp"\n\nstd::string mainEntry() {\n'
            '  shop::Widget w = shop::makeWidget("a");\n  return w.renderWidget(1);\n}\n'
        ),
    },
    "c_sharp": {
        "cs/Widget.cs": (
            "using System;\n\nnamespace Shop\n{\n    public class Widget\n    {\n"
            "        public string RenderWidget(int depth)\n        {\n"
            "            return depth.ToString();\n        }\n\n"
            "        public static Widget MakeWidget(string name)\n        {\n"
            "            return new Widget();\n        }\n    }\n}\n"
        ),
        "cs/App.cs": (
            "using Shop;\n\nnamespace Shop\n{\n    public class App\n    {\n"
            "        public string MainEntry()\n        {\n"
            '            Widget w = Widget.MakeWidget("a");\n'
            "            return w.RenderWidget(1);\n        }\n    }\n}\n"
        ),
    },
    "ruby": {
        "rb/widget.rb": (
            "module Shop\n  class Widget\n    def render_widget(depth)\n      depth.to_s\n"
            "    end\n\n    def self.make_widget(name)\n      Widget.new\n    end\n  end\nend\n"
        ),
        "rb/app.rb": (
            "require_relative 'widget'\n\ndef main_entry\n"
            "  w = Shop::Widget.make_widget('a')\n  w.render_widget(1)\nend\n"
        ),
    },
    "php": {
        "php/Widget.php": (
            "<?php\nnamespace Shop;\n\nclass Widget\n{\n"
            "    public function renderWidget(int $depth): string\n    {\n"
            "        return (string) $depth;\n    }\n}\n\n"
            "function makeWidget(string $name): Widget\n{\n    return new Widget();\n}\n"
        ),
        "php/app.php": (
            "<?php\nrequire_once 'Widget.php';\nuse Shop\\Widget;\n\n"
            "function mainEntry(): string\n{\n    $w = makeWidget('a');\n"
            "    return $w->renderWidget(1);\n}\n"
        ),
    },
}

# The names each language's library file must define, and the user file must reference.
EXPECTED: dict[str, tuple[set[str], set[str]]] = {
    "python": (
        {"Widget", "render_widget", "make_widget", "LIMIT"},
        {"make_widget", "render_widget"},
    ),
    "javascript": ({"Widget", "renderWidget", "makeWidget"}, {"makeWidget", "renderWidget"}),
    "typescript": (
        {"WidgetShape", "Widget", "renderWidget", "makeWidget"},
        {"makeWidget", "renderWidget", "WidgetShape"},
    ),
    "tsx": ({"WidgetPanel"}, {"WidgetPanel"}),
    "go": ({"Widget", "RenderWidget", "MakeWidget"}, {"MakeWidget", "RenderWidget"}),
    "rust": ({"Widget", "render_widget", "make_widget"}, {"make_widget", "render_widget"}),
    "java": ({"Widget", "renderWidget", "makeWidget"}, {"Widget", "makeWidget", "renderWidget"}),
    "c": ({"widget_t", "widget_s", "make_widget", "render_widget"}, {"make_widget", "widget_t"}),
    "cpp": ({"Widget", "renderWidget", "makeWidget"}, {"Widget", "makeWidget", "renderWidget"}),
    "c_sharp": (
        {"Widget", "RenderWidget", "MakeWidget"},
        {"Widget", "MakeWidget", "RenderWidget"},
    ),
    "ruby": ({"Shop", "Widget", "render_widget", "make_widget"}, {"make_widget", "render_widget"}),
    "php": ({"Widget", "renderWidget", "makeWidget"}, {"makeWidget", "renderWidget"}),
}


def write_polyglot(root: Path, *, git: bool = True) -> Path:
    """Write every language's files under `root` (a git repository when `git`)."""
    for files in SOURCES.values():
        for path, text in files.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    if git:
        run = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
        subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
        subprocess.run([*run, "-C", str(root), "add", "-A"], check=True)
        subprocess.run([*run, "-C", str(root), "commit", "-qm", "polyglot"], check=True)
    return root
