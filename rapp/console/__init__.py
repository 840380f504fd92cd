"""The operator console (docs/console.md): pages under /console served by the rApp, their JSON under /api/v1.

- `incidents`: the recorded incidents summarized, filtered and sorted; `notes`: operators' acknowledgements,
  notes and verdicts; `network`: the network-now view; `plot`: an incident's measurements against their normal
  band; `labels`: verdicts as labels.csv; `events`: related incidents grouped into network events;
  `cellview`: a cell's measurements, incidents and forecast; `truth`: the demo's ground-truth labels;
  `silences`: maintenance silences (A1 policies with an expiry); `policies`: the policies page's JSON;
  `models`: the models and jobs page's JSON; `service`: `Console`, what the routes ask of the rApp;
  `api`: the JSON routes; `pages`: the pages and their assets.
"""
