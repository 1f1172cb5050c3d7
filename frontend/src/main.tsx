import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

import { App } from "./App";
import { Session } from "./nats";
import "./styles.css";

const session = new Session();

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App session={session} />
  </StrictMode>,
);
