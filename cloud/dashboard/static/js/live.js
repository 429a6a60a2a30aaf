// Server-sent events read with fetch + ReadableStream, because EventSource cannot send an
// Authorization header and a key must never sit in a URL. Reconnects by itself; after each
// (re)connect the caller re-reads the state it may have missed.

function parseBlock(block) {
  let event = "message";
  const data = [];
  let retry = null;
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "retry" && /^\d+$/.test(value)) retry = Number(value);
  }
  return { event, data: data.length ? data.join("\n") : null, retry };
}

export function openStream({ token, onEvent, onState }) {
  const controller = new AbortController();
  let retryMs = 2000;

  async function once() {
    const resp = await fetch("/api/v1/stream", {
      headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" },
      cache: "no-store",
      signal: controller.signal,
    });
    if (resp.status === 401 || resp.status === 403) {
      onState(resp.status === 401 ? "unauthorized" : "refused", resp.status);
      return false;
    }
    if (!resp.ok || !resp.body) throw new Error(`stream answered ${resp.status}`);
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return true;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = parseBlock(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (block.retry !== null) retryMs = block.retry;
        if (block.event === "hello") onState("live");
        else if (block.data !== null) onEvent(block.event, JSON.parse(block.data));
      }
    }
  }

  (async () => {
    while (!controller.signal.aborted) {
      try {
        if ((await once()) === false) return;
      } catch (err) {
        if (controller.signal.aborted) return;
      }
      onState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  })();

  return () => controller.abort();
}
