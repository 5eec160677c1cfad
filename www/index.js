// Entry point: the page script. The wasm module lives in the worker, never on the UI thread.
import { startApp } from "./app.js";

startApp(document);
