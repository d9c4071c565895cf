"""The explanations as one self-contained HTML page: each example's words coloured by each
method's scores (green supports the predicted class, red speaks against it), and the
faithfulness table. No scripts, no network; every text is escaped (Jinja2 autoescape)."""

from __future__ import annotations

import jinja2

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Explanations of {{ r.artifact }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
td:first-child,th:first-child{text-align:left}
.ex{border-top:1px solid #ccc;padding:.6em 0}.m{color:#555;font-size:.85em;width:12em;display:inline-block}
.w{padding:.1em .15em;border-radius:3px;margin:0 .05em;white-space:pre-wrap}
.note{color:#555;font-size:.9em}
</style></head><body>
<h1>Why did {{ r.lineage }} ({{ r.artifact }}) decide that?</h1>
<p class="note">{{ r.examples|length }} example(s); methods: {{ r.methods|join(", ") }}.
{% for m, why in r.skipped.items() %}{{ m }} not run: {{ why }}. {% endfor %}
Green: the word supports the predicted class; red: it speaks against it (shade: |score| over the
example's largest). Attention rollout is non-negative and class-agnostic, a weaker baseline.</p>
{% if r.faithfulness %}
<h2>Faithfulness (ERASER AOPC over k = {{ r.settings.aopc_percents|join(", ") }}% of the words)</h2>
<table><tr><th>attribution</th><th>comprehensiveness (higher is better)</th>
<th>sufficiency (lower is better)</th><th>comprehensiveness / random</th></tr>
{% for m in r.methods %}{% set f = r.faithfulness[m] %}
{% set ratio = f.comprehensiveness_vs_random %}
<tr><td>{{ m }}</td><td>{{ "%.4f"|format(f.comprehensiveness) }}</td>
<td>{{ "%.4f"|format(f.sufficiency) }}</td>
<td>{{ "%.2fx"|format(ratio) if ratio is not none else "-" }}</td></tr>
{% endfor %}{% set rnd = r.faithfulness.random %}
<tr><td>random ({{ r.settings.seeds|length }} seeds)</td>
<td>{{ "%.4f ± %.4f"|format(rnd.comprehensiveness.mean, rnd.comprehensiveness.sd) }}</td>
<td>{{ "%.4f ± %.4f"|format(rnd.sufficiency.mean, rnd.sufficiency.sd) }}</td><td>1.00x</td></tr>
</table>{% endif %}
{% if r.drift is defined %}{% set d = r.drift %}
<h2>Explanation drift against {{ d.against }} ({{ d.against_lineage }})</h2>
<p class="note">{{ d.compared }} of {{ d.examples }} examples explained under both, scores for the parent's
predicted class; top-k overlap = shared top-k words / k.</p>
<ul>{% for m, s in d.methods.items() %}<li>{{ s.sentence }}</li>{% endfor %}</ul>{% endif %}
<h2>Examples</h2>
{% for e in r.examples %}<div class="ex">
<p>#{{ loop.index0 }}: predicted <b>{{ e.predicted }}</b> ({{ "%.3f"|format(e.probability) }})
{%- if e.label is not none %}, true <b>{{ e.label }}</b>
{% if e.label != e.predicted %} (wrong){% endif %}{% endif %}
{% if e.truncated_words %}; {{ e.truncated_words }} word(s) past the max length not shown{% endif %}</p>
{% for m in r.methods %}<div><span class="m">{{ m }}</span>{% for w in e.words %}{% set s = e.scores[m] %}
<span class="w" style="background:{{ shade(s, loop.index0) }}"
 title="{{ "%.4g"|format(s[loop.index0]) }}">{{ w }}</span>
{% endfor %}</div>{% endfor %}
</div>{% endfor %}
</body></html>
"""


def shade(scores: list[float], i: int) -> str:
    """Background colour of word i: green for positive, red for negative, alpha by magnitude."""
    top = max((abs(s) for s in scores), default=0.0)
    a = abs(scores[i]) / top if top > 0 else 0.0
    rgb = "0,160,60" if scores[i] >= 0 else "220,40,40"
    return f"rgba({rgb},{0.75 * a:.3f})"


def render(result: dict) -> str:
    """The page for an `explain` result (the JSON written beside it)."""
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(TEMPLATE).render(r=result, shade=shade)
