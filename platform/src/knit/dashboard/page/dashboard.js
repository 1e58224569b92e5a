// The knit dashboard: a server-sent event a second carries a snapshot of every Service's
// Revisions and the eventing sources; this renders it. Names reach the DOM only as text.
(() => {
  "use strict";

  const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);
  const live = byTestId("live");
  const services = byTestId("services");
  const sources = byTestId("sources").querySelector("tbody");

  function element(tag, text = "", className = "") {
    const made = document.createElement(tag);
    if (text !== "") made.textContent = text;
    if (className) made.className = className;
    return made;
  }

  function row(cells) {
    const tr = document.createElement("tr");
    cells.forEach((cell) => tr.append(cell instanceof Node ? wrap(cell) : element("td", String(cell))));
    return tr;
  }

  function wrap(node) {
    const td = document.createElement("td");
    td.append(node);
    return td;
  }

  function number(value) {
    return element("td", String(value), "number");
  }

  function revisionRow(revision, now) {
    const chart = element("img", "", "chart");
    chart.alt = `instances of ${revision.name}`;
    chart.src = `/charts/${encodeURIComponent(revision.name)}.svg?at=${now}`;
    const scale = `${revision.actual} / ${revision.desired}`;
    const tr = document.createElement("tr");
    tr.dataset.testid = "revision";
    tr.dataset.name = revision.name;
    tr.dataset.actual = String(revision.actual);
    tr.dataset.peak = String(revision.peak);
    tr.append(
      element("td", revision.name, revision.ready ? "" : "not-ready"),
      number(`${revision.percent}%`),
      number(scale),
      element("td", revision.panic ? "panic" : "stable", revision.panic ? "panic" : ""),
      number(revision.rps.toFixed(1)),
      number(revision.in_flight),
      wrap(chart),
    );
    return tr;
  }

  function render(snapshot) {
    const now = Date.now();
    const blocks = snapshot.services.map((service) => {
      const block = element("div", "", "service");
      block.dataset.testid = "service";
      block.dataset.name = service.name;
      const title = element("h3", `${service.namespace}/${service.name}`, service.ready ? "" : "not-ready");
      if (service.url) {
        const link = element("a", service.url);
        link.href = service.url;
        title.append(link);
      } else {
        title.append(element("span", " (cluster-local)"));
      }
      if (!service.ready && service.reason) title.append(element("span", ` — ${service.reason}`));
      const table = element("table");
      const head = row(["revision", "traffic", "ready / desired", "autoscaler", "requests/s", "in flight",
        "instances"]);
      head.querySelectorAll("td").forEach((td) => td.replaceWith(element("th", td.textContent)));
      table.append(head, ...service.revisions.map((revision) => revisionRow(revision, now)));
      block.append(title, table);
      return block;
    });
    services.replaceChildren(...blocks);
    sources.replaceChildren(...snapshot.sources.map((source) => {
      const tr = row([source.kind, source.name, source.ready ? "yes" : `no: ${source.reason}`, source.what]);
      tr.dataset.testid = "source";
      return tr;
    }));
  }

  const stream = new EventSource("/events");
  stream.addEventListener("message", (event) => {
    live.dataset.state = "live";
    live.textContent = "live";
    render(JSON.parse(event.data));
  });
  stream.addEventListener("error", () => {
    live.dataset.state = "offline";
    live.textContent = "offline, reconnecting…";
  });
})();
