// The leads map: Leaflet + markercluster, both vendored under /static/vendor/leaflet/.
// No inline script or style attribute anywhere (CSP: script-src 'self'; style-src 'self'):
// everything the map needs comes from the data-* attributes of #lead-map, and every
// piece of data reaches the page as text nodes (textContent), never as HTML.
//
//   <div id="lead-map"
//        data-tiles="/tiles/{z}/{x}/{y}.png"
//        data-attribution="© OpenStreetMap contributors"
//        data-points="/fr/leads/map.json"
//        data-status-labels='{"new": "Nouvelle", ...}'></div>
//
// The points endpoint answers {"points": [{"id", "lat", "lng", "status", "label", "url"}]}.
(function () {
  "use strict";

  var STATUS_ORDER = ["new", "scheduled", "contacted", "closed", "archived"];
  var STATUS_COLOURS = {
    "new": "#0b5d7a",
    "scheduled": "#7a4fb5",
    "contacted": "#b26a00",
    "closed": "#1d6b3a",
    "archived": "#6b7785"
  };
  var FALLBACK_COLOUR = "#6b7785";
  var DEFAULT_CENTER = [45.50, -73.57]; // Montréal
  var DEFAULT_ZOOM = 10;
  var FIT_MAX_ZOOM = 15; // one point (or a few close together) is not shown at street level 19

  function colourOf(status) {
    return STATUS_COLOURS.hasOwnProperty(status) ? STATUS_COLOURS[status] : FALLBACK_COLOUR;
  }

  function parseLabels(text) {
    if (!text) { return {}; }
    try {
      var parsed = JSON.parse(text);
      return (parsed && typeof parsed === "object") ? parsed : {};
    } catch (e) {
      return {};
    }
  }

  function labelOf(labels, status) {
    return (labels.hasOwnProperty(status) && labels[status]) ? String(labels[status]) : String(status);
  }

  // Leaflet puts attributions in the page as HTML: ours is text, so it is escaped first.
  function escapeHtml(text) {
    return String(text)
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;")
      .replace(/'/g, "&#39;");
  }

  // Only links into this site (or plain http/https): a "javascript:" URL never becomes a link.
  function safeUrl(url) {
    if (typeof url !== "string" || !url) { return null; }
    if (url.charAt(0) === "/" && url.charAt(1) !== "/" && url.charAt(1) !== "\\") { return url; }
    if (/^https?:\/\//i.test(url)) { return url; }
    return null;
  }

  function isNumber(value) {
    return typeof value === "number" && isFinite(value);
  }

  // The lead's label, as a link to the lead when it has a usable URL.
  function popupContent(point) {
    var box = document.createElement("div");
    box.className = "map-popup";
    var text = point.label == null ? "" : String(point.label);
    var href = safeUrl(point.url);
    var node;
    if (href) {
      node = document.createElement("a");
      node.href = href;
    } else {
      node = document.createElement("strong");
    }
    node.textContent = text;
    box.appendChild(node);
    return box;
  }

  function legendControl(labels) {
    var Legend = L.Control.extend({
      options: { position: "bottomright" },
      onAdd: function () {
        var box = L.DomUtil.create("div", "leaflet-control map-legend");
        box.style.background = "#ffffff";
        box.style.padding = "6px 8px";
        box.style.borderRadius = "4px";
        box.style.boxShadow = "0 1px 4px rgba(0, 0, 0, 0.3)";
        box.style.lineHeight = "1.5";
        var list = document.createElement("ul");
        list.style.listStyle = "none";
        list.style.margin = "0";
        list.style.padding = "0";
        for (var i = 0; i < STATUS_ORDER.length; i++) {
          var status = STATUS_ORDER[i];
          var item = document.createElement("li");
          var swatch = document.createElement("span");
          swatch.setAttribute("aria-hidden", "true");
          swatch.style.display = "inline-block";
          swatch.style.width = "10px";
          swatch.style.height = "10px";
          swatch.style.borderRadius = "50%";
          swatch.style.marginRight = "6px";
          swatch.style.verticalAlign = "middle";
          swatch.style.background = colourOf(status);
          item.appendChild(swatch);
          item.appendChild(document.createTextNode(labelOf(labels, status)));
          list.appendChild(item);
        }
        box.appendChild(list);
        L.DomEvent.disableClickPropagation(box);
        L.DomEvent.disableScrollPropagation(box);
        return box;
      }
    });
    return new Legend();
  }

  function loadPoints(url, done) {
    var xhr = new XMLHttpRequest();
    xhr.open("GET", url, true);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.onload = function () {
      if (xhr.status < 200 || xhr.status >= 300) { done([]); return; }
      try {
        var body = JSON.parse(xhr.responseText);
        done(body && body.points && body.points.length !== undefined ? body.points : []);
      } catch (e) {
        done([]);
      }
    };
    xhr.onerror = function () { done([]); };
    xhr.send();
  }

  function showPoints(map, cluster, points) {
    var bounds = [];
    for (var i = 0; i < points.length; i++) {
      var p = points[i];
      if (!p || !isNumber(p.lat) || !isNumber(p.lng)) { continue; }
      var colour = colourOf(p.status);
      var marker = L.circleMarker([p.lat, p.lng], {
        radius: 8,
        color: "#ffffff",
        weight: 2,
        fillColor: colour,
        fillOpacity: 0.9
      });
      marker.bindPopup(popupContent(p));
      cluster.addLayer(marker);
      bounds.push([p.lat, p.lng]);
    }
    if (bounds.length) {
      map.fitBounds(bounds, { padding: [30, 30], maxZoom: FIT_MAX_ZOOM });
    } else {
      map.setView(DEFAULT_CENTER, DEFAULT_ZOOM);
    }
  }

  function init(el) {
    if (!el || el.getAttribute("data-map-ready") === "1") { return; }
    if (typeof L === "undefined" || typeof L.markerClusterGroup !== "function") { return; }
    el.setAttribute("data-map-ready", "1");
    // A map needs a height; the stylesheet should give one, this is only the fallback.
    if (!el.clientHeight) { el.style.height = "420px"; }

    var labels = parseLabels(el.getAttribute("data-status-labels"));
    var map = L.map(el, { scrollWheelZoom: false, zoomControl: false });
    map.setView(DEFAULT_CENTER, DEFAULT_ZOOM);
    // The zoom buttons' titles in the page's language (Leaflet's own are English).
    L.control.zoom({
      zoomInTitle: el.getAttribute("data-zoom-in") || "Zoom in",
      zoomOutTitle: el.getAttribute("data-zoom-out") || "Zoom out"
    }).addTo(map);

    var tiles = el.getAttribute("data-tiles");
    if (tiles) {
      L.tileLayer(tiles, {
        maxZoom: 19,
        attribution: escapeHtml(el.getAttribute("data-attribution") || "")
      }).addTo(map);
    }

    var cluster = L.markerClusterGroup({ showCoverageOnHover: false, maxClusterRadius: 40 });
    map.addLayer(cluster);
    legendControl(labels).addTo(map);

    var pointsUrl = el.getAttribute("data-points");
    if (pointsUrl) {
      loadPoints(pointsUrl, function (points) { showPoints(map, cluster, points); });
    }
  }

  function start() {
    init(document.getElementById("lead-map"));
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
  // A map swapped in by htmx after the page loaded.
  document.addEventListener("htmx:load", start);
})();
