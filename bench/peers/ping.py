"""The floor: a bare FastAPI endpoint, no authentication (`uvicorn bench.peers.ping:app`)."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/ping")
async def ping() -> dict[str, bool]:
    return {"ok": True}
