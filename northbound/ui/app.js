// Neutrino's topology page: polls GET /v1/topology (the API's auth: under
// Keystone the token comes from the page's #token=... fragment) and draws
// networks, routers, ports, chassis and gateways. Plain DOM and SVG, no
// libraries, no build step.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const POLL_MS = 1000;

function token() {
  const m = /token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem("neutrino-token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem("neutrino-token");
}

function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function row(cells, attrs) {
  const tr = document.createElement("tr");
  for (const [k, v] of Object.entries(attrs || {})) tr.setAttribute(k, v);
  for (const c of cells) {
    const td = document.createElement("td");
    td.textContent = c;
    tr.appendChild(td);
  }
  return tr;
}

const label = (o) => o.name || o.id.slice(0, 8);
// Ports that belong to a network's plumbing rather than to a workload.
const plumbing = (p) => p.device_owner.startsWith("network:");

function draw(t) {
  const svg = document.getElementById("topo");
  svg.replaceChildren();
  const chassis = t.chassis.slice().sort((a, b) => a.name.localeCompare(b.name));
  const cols = chassis.map((c) => c.name).concat(["(unbound)"]);
  const x0 = 330, colW = 140, y0 = 90, rowH = 50;
  const width = x0 + cols.length * colW;
  const height = y0 + Math.max(t.networks.length, t.routers.length, 1) * rowH + 20;
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  const colX = {};
  cols.forEach((name, i) => { colX[name] = x0 + i * colW + colW / 2; });

  const gatewayOf = {};
  for (const r of t.routers) {
    if (r.active_gateway) (gatewayOf[r.active_gateway] ||= []).push(label(r));
  }
  chassis.forEach((c) => {
    const g = el("g", { class: "chassis " + (c.up ? "up" : "down"), "data-chassis": c.name, "data-state": c.up ? "up" : "down" });
    const x = colX[c.name] - colW / 2 + 5;
    g.appendChild(el("rect", { x, y: 5, width: colW - 10, height: 60, rx: 4 }));
    g.appendChild(el("text", { x: x + 6, y: 22 }, c.name));
    g.appendChild(el("text", { x: x + 6, y: 38, class: "state small" }, (c.up ? "up" : "DOWN") + " · " + c.roles.join(",")));
    if (gatewayOf[c.name]) g.appendChild(el("text", { x: x + 6, y: 54, class: "small" }, "gw: " + gatewayOf[c.name].join(",")));
    svg.appendChild(g);
  });

  const rowY = {};
  t.networks.forEach((n, j) => {
    const y = y0 + j * rowH + 25;
    rowY[n.id] = y;
    const g = el("g", { class: "network" + (n.external ? " external" : ""), "data-network-id": n.id, "data-network-name": n.name });
    g.appendChild(el("line", { x1: 180, y1: y, x2: width - 10, y2: y }));
    g.appendChild(el("text", { x: 185, y: y - 6 }, label(n)));
    g.appendChild(el("text", { x: 185, y: y + 14, class: "small" }, n.cidrs.join(" ")));
    svg.appendChild(g);
  });

  const perCell = {};
  for (const p of t.ports) {
    if (plumbing(p) || rowY[p.network_id] === undefined) continue;
    const col = colX[p.chassis] !== undefined ? p.chassis : "(unbound)";
    const k = col + "|" + p.network_id;
    const i = (perCell[k] = (perCell[k] || 0) + 1) - 1;
    const g = el("g", { class: "port " + (p.status === "ACTIVE" ? "active" : "down"), "data-port-id": p.id, "data-chassis": p.chassis || "" });
    const cx = colX[col] - 50 + (i % 8) * 14, cy = rowY[p.network_id] + (i >= 8 ? 12 : 0);
    g.appendChild(el("circle", { cx, cy, r: 5 }));
    g.appendChild(el("title", {}, `${label(p)} ${p.ips.join(" ")} ${p.status} on ${p.chassis || "no chassis"}`));
    svg.appendChild(g);
  }

  t.routers.forEach((r, j) => {
    const y = y0 + j * rowH + 5;
    const g = el("g", { class: "router", "data-router-id": r.id, "data-active-gateway": r.active_gateway || "" });
    for (const nid of r.networks.concat(r.gateway_network ? [r.gateway_network] : [])) {
      if (rowY[nid] !== undefined) g.appendChild(el("line", { x1: 160, y1: y + 20, x2: 180, y2: rowY[nid] }));
    }
    g.appendChild(el("rect", { x: 10, y, width: 150, height: 40, rx: 4 }));
    g.appendChild(el("text", { x: 16, y: y + 16 }, "router " + label(r)));
    g.appendChild(el("text", { x: 16, y: y + 32, class: "small" }, r.gateway_network ? "active gw: " + (r.active_gateway || "none") : "no gateway"));
    svg.appendChild(g);
  });

  const portsOn = {};
  for (const p of t.ports) if (p.chassis && !plumbing(p)) portsOn[p.chassis] = (portsOn[p.chassis] || 0) + 1;
  document.getElementById("chassis-list").replaceChildren(...chassis.map((c) => row(
    [c.name, c.up ? "up" : "DOWN", c.roles.join(", "), c.tunnel_ip, c.availability_zone, (gatewayOf[c.name] || []).join(", "), String(portsOn[c.name] || 0)],
    { class: c.up ? "up" : "down", "data-chassis": c.name, "data-state": c.up ? "up" : "down" })));
  const netName = {};
  for (const n of t.networks) netName[n.id] = label(n);
  document.getElementById("router-list").replaceChildren(...t.routers.map((r) => row(
    [label(r), r.networks.map((id) => netName[id] || id).join(", "), r.active_gateway || (r.gateway_network ? "none" : "-"), r.gateway_chassis.join(", ")],
    { "data-router-id": r.id })));
  const portsIn = {};
  for (const p of t.ports) if (!plumbing(p)) portsIn[p.network_id] = (portsIn[p.network_id] || 0) + 1;
  document.getElementById("network-list").replaceChildren(...t.networks.map((n) => row(
    [label(n), n.cidrs.join(", "), String(portsIn[n.id] || 0)], { "data-network-id": n.id, "data-network-name": n.name })));
}

async function poll() {
  const status = document.getElementById("status");
  try {
    const headers = {};
    const tok = token();
    if (tok) headers["X-Auth-Token"] = tok;
    const resp = await fetch("/v1/topology", { headers, cache: "no-store" });
    const body = await resp.json();
    if (!resp.ok) throw new Error((body.NeutronError && body.NeutronError.message) || resp.statusText);
    draw(body);
    status.className = "";
    status.textContent = `revision ${body.revision} · ${new Date().toLocaleTimeString()}`;
    status.setAttribute("data-revision", body.revision);
  } catch (err) {
    status.className = "error";
    status.textContent = "error: " + err.message;
  }
  setTimeout(poll, POLL_MS);
}

poll();
