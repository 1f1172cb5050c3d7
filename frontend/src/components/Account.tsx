// The account: an entry point in the header and a dialog with small forms
// to sign up, log in, and manage the account. The forms get callbacks; the
// session in nats.ts and account.ts do the talking to the server.
import { useEffect, useId, useRef, useState, type FormEvent, type ReactNode } from "react";

import { accountProblem, type Action, type Field, type Problem } from "../account";
import type { Enrolment, Profile } from "../types";
import { MAX_NAME_CHARS } from "../types";
import { UserIcon } from "./Icons";
import { RegisteredMark } from "./Registered";

/** What the account forms can do. */
export interface AccountActions {
  login(username: string, password: string | null, code?: string): Promise<void>;
  signup(username: string, password: string, displayName: string): Promise<void>;
  logout(): Promise<void>;
  rename(displayName: string): Promise<void>;
  /** true when still signed in afterwards; false when the person has to sign in again. */
  changePassword(oldPassword: string, password: string): Promise<boolean>;
  startTotp(passwordless: boolean): Promise<Enrolment>;
  confirmTotp(code: string): Promise<void>;
  disableTotp(code: string): Promise<void>;
  deleteAccount(proof: { password: string } | { totp: string }): Promise<void>;
  dismissNotice(): void;
}

interface MenuProps {
  profile: Profile | null;
  notice: string | null;
  actions: AccountActions;
}

/** AccountMenu is the header's way in: "Sign in", or the account once signed in. */
export function AccountMenu({ profile, notice, actions }: MenuProps) {
  const dialog = useRef<HTMLDialogElement>(null);
  const button = useRef<HTMLButtonElement>(null);
  const [open, setOpen] = useState(false);

  const show = () => {
    setOpen(true);
    dialog.current?.showModal();
  };
  const close = () => dialog.current?.close();

  return (
    <>
      <button
        ref={button}
        type="button"
        className="btn btn-ghost btn-small account-button"
        data-testid="account-button"
        data-signed-in={String(profile !== null)}
        aria-haspopup="dialog"
        onClick={show}
      >
        <UserIcon size={15} />
        <span className="account-label">{profile === null ? "Sign in" : "Account"}</span>
      </button>
      {notice !== null && !open && (
        <p className="account-notice" data-testid="account-notice" role="status">
          {notice}{" "}
          <button type="button" className="btn btn-small btn-ghost" onClick={show}>
            Sign in
          </button>
          <button type="button" className="btn btn-small btn-ghost" aria-label="Dismiss" onClick={actions.dismissNotice}>
            ×
          </button>
        </p>
      )}
      <dialog
        ref={dialog}
        className="account-dialog"
        data-testid="account-dialog"
        aria-labelledby="account-dialog-title"
        onClose={() => {
          setOpen(false);
          button.current?.focus();
        }}
        onClick={(e) => {
          // A click on the backdrop (the dialog element itself, outside its card) closes it.
          if (e.target === dialog.current) close();
        }}
      >
        {open && <AccountDialog profile={profile} notice={notice} actions={actions} onClose={close} />}
      </dialog>
    </>
  );
}

type View = "signin" | "signup";

function AccountDialog({ profile, notice, actions, onClose }: MenuProps & { onClose: () => void }) {
  const [view, setView] = useState<View>("signin");
  // After the session ends (a two-factor change, say), sign in again as the same person.
  const [lastUsername, setLastUsername] = useState(profile?.username ?? "");
  useEffect(() => {
    if (profile !== null) setLastUsername(profile.username);
  }, [profile]);

  let title: string;
  let body: ReactNode;
  if (profile !== null) {
    title = "Your account";
    body = <Settings profile={profile} actions={actions} onClose={onClose} />;
  } else if (view === "signup") {
    title = "Register a name";
    body = <SignUp actions={actions} onDone={onClose} onSignIn={() => setView("signin")} />;
  } else {
    title = "Sign in";
    body = (
      <SignIn
        key={lastUsername}
        initialUsername={lastUsername}
        notice={notice}
        actions={actions}
        onDone={onClose}
        onSignUp={() => setView("signup")}
      />
    );
  }
  return (
    <div className="account-card">
      <div className="account-head">
        <h2 id="account-dialog-title">{title}</h2>
        <button type="button" className="btn btn-ghost btn-small" data-testid="account-close" onClick={onClose} aria-label="Close">
          ×
        </button>
      </div>
      {body}
    </div>
  );
}

/** useForm runs a form's submission: busy while it runs, and its error mapped to a field. */
function useForm(action: Action) {
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<Problem | null>(null);
  const run = async (fn: () => Promise<void>) => {
    if (busy) return;
    setBusy(true);
    setProblem(null);
    try {
      await fn();
    } catch (err) {
      setProblem(err instanceof FieldProblem ? { field: err.field, message: err.message } : accountProblem(err, action));
    } finally {
      setBusy(false);
    }
  };
  const errorFor = (field: Field) => (problem?.field === field ? problem.message : null);
  return { busy, problem, setProblem, run, errorFor };
}

interface InputProps {
  testId: string;
  label: string;
  value: string;
  onChange: (v: string) => void;
  error: string | null;
  type?: "text" | "password";
  autoComplete: string;
  hint?: string;
  code?: boolean;
  autoFocus?: boolean;
  maxLength?: number;
}

/** Input is a labelled field with its hint and its inline error, tied together for screen readers. */
function Input({ testId, label, value, onChange, error, type = "text", autoComplete, hint, code, autoFocus, maxLength }: InputProps) {
  const id = useId();
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const describedBy = [hint !== undefined ? hintId : "", error !== null ? errorId : ""].filter(Boolean).join(" ");
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        className={code ? "input input-code" : "input"}
        data-testid={testId}
        type={type}
        value={value}
        onChange={(e) => onChange(code ? e.target.value.replace(/\D/g, "").slice(0, 6) : e.target.value)}
        autoComplete={autoComplete}
        autoFocus={autoFocus}
        inputMode={code ? "numeric" : undefined}
        pattern={code ? "[0-9]{6}" : undefined}
        maxLength={maxLength}
        spellCheck={false}
        autoCapitalize="off"
        aria-invalid={error !== null}
        aria-describedby={describedBy || undefined}
      />
      {hint !== undefined && (
        <p className="field-hint" id={hintId}>
          {hint}
        </p>
      )}
      {error !== null && (
        <p className="field-error" id={errorId} data-testid={`${testId}-error`} role="alert">
          {error}
        </p>
      )}
    </div>
  );
}

function FormError({ testId, message }: { testId: string; message: string | null }) {
  if (message === null) return null;
  return (
    <p className="field-error form-error" data-testid={testId} role="alert">
      {message}
    </p>
  );
}

const usernameHint = "3 to 32 characters: lower-case letters a–z, digits and _.";
const passwordHint = "At least 10 characters, and not a common password.";

interface SignInProps {
  initialUsername: string;
  notice: string | null;
  actions: AccountActions;
  onDone: () => void;
  onSignUp: () => void;
}

function SignIn({ initialUsername, notice, actions, onDone, onSignUp }: SignInProps) {
  const [username, setUsername] = useState(initialUsername);
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [needsCode, setNeedsCode] = useState(false);
  const [codeOnly, setCodeOnly] = useState(false);
  const codeRef = useRef<HTMLDivElement>(null);
  const f = useForm("login");

  useEffect(() => {
    if (needsCode) codeRef.current?.querySelector("input")?.focus();
  }, [needsCode]);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    void f.run(async () => {
      try {
        await actions.login(username.trim(), codeOnly ? null : password, needsCode || codeOnly ? code : undefined);
        onDone();
      } catch (err) {
        if (accountProblem(err, "login").needsCode) setNeedsCode(true);
        setCode("");
        throw err;
      }
    });
  };

  const showCode = needsCode || codeOnly;
  return (
    <form className="account-form" data-testid="signin-form" onSubmit={submit} noValidate>
      {notice !== null && (
        <p className="notice notice-info" data-testid="account-notice" role="status">
          {notice}
        </p>
      )}
      <p className="muted small">Signed in, your registered name carries a mark and nobody else can use it.</p>
      <Input
        testId="signin-username"
        label="Username"
        value={username}
        onChange={setUsername}
        error={f.errorFor("username")}
        autoComplete="username"
        autoFocus={initialUsername === ""}
      />
      {!codeOnly && (
        <Input
          testId="signin-password"
          label="Password"
          type="password"
          value={password}
          onChange={setPassword}
          error={f.errorFor("password")}
          autoComplete="current-password"
          autoFocus={initialUsername !== ""}
        />
      )}
      {showCode && (
        <div ref={codeRef}>
          <Input
            testId="signin-code"
            label="6-digit code"
            value={code}
            onChange={setCode}
            error={f.errorFor("code")}
            autoComplete="one-time-code"
            hint="From your authenticator app."
            code
            autoFocus={codeOnly}
          />
        </div>
      )}
      <label className="check">
        <input
          type="checkbox"
          data-testid="signin-code-only"
          checked={codeOnly}
          onChange={(e) => {
            setCodeOnly(e.target.checked);
            f.setProblem(null);
          }}
        />
        I sign in with a code instead of a password
      </label>
      <FormError testId="signin-error" message={f.errorFor("form")} />
      <div className="form-actions">
        <button type="submit" className="btn btn-primary" data-testid="signin-submit" disabled={f.busy}>
          {f.busy ? "Signing in…" : "Sign in"}
        </button>
        <button type="button" className="btn btn-link" data-testid="show-signup" onClick={onSignUp}>
          Register a name instead
        </button>
      </div>
    </form>
  );
}

function SignUp({ actions, onDone, onSignIn }: { actions: AccountActions; onDone: () => void; onSignIn: () => void }) {
  const [username, setUsername] = useState("");
  const [displayName, setDisplayName] = useState("");
  const [password, setPassword] = useState("");
  const f = useForm("signup");

  const submit = (e: FormEvent) => {
    e.preventDefault();
    void f.run(async () => {
      if (password.length < 10) throw new FieldProblem("password", "Passwords have at least 10 characters.");
      await actions.signup(username.trim(), password, displayName.trim());
      onDone();
    });
  };

  return (
    <form className="account-form" data-testid="signup-form" onSubmit={submit} noValidate>
      <p className="muted small">
        Chatting needs no account. Register to keep a name of your own: it carries a mark, and nobody else can take it.
      </p>
      <Input
        testId="signup-username"
        label="Username"
        value={username}
        onChange={setUsername}
        error={f.errorFor("username")}
        autoComplete="username"
        hint={usernameHint}
        autoFocus
        maxLength={64}
      />
      <Input
        testId="signup-display-name"
        label="Display name"
        value={displayName}
        onChange={setDisplayName}
        error={f.errorFor("display_name")}
        autoComplete="nickname"
        hint="The name people see in rooms."
        maxLength={MAX_NAME_CHARS * 2}
      />
      <Input
        testId="signup-password"
        label="Password"
        type="password"
        value={password}
        onChange={setPassword}
        error={f.errorFor("password")}
        autoComplete="new-password"
        hint={passwordHint}
      />
      <FormError testId="signup-error" message={f.errorFor("form")} />
      <div className="form-actions">
        <button type="submit" className="btn btn-primary" data-testid="signup-submit" disabled={f.busy}>
          {f.busy ? "Registering…" : "Register"}
        </button>
        <button type="button" className="btn btn-link" data-testid="show-signin" onClick={onSignIn}>
          I have an account
        </button>
      </div>
    </form>
  );
}

/** FieldProblem is a check made before asking the server, shown like the server's errors. */
class FieldProblem extends Error {
  readonly field: Field;
  constructor(field: Field, message: string) {
    super(message);
    this.field = field;
  }
}

function Settings({ profile, actions, onClose }: { profile: Profile; actions: AccountActions; onClose: () => void }) {
  return (
    <div className="account-settings">
      <p className="account-who">
        Signed in as <strong data-testid="account-username">{profile.username}</strong>
        <span className="account-display">
          <span data-testid="account-display-name">{profile.display_name}</span>
          <RegisteredMark />
        </span>
      </p>
      <DisplayNameForm profile={profile} actions={actions} />
      <PasswordForm actions={actions} />
      <TwoFactor profile={profile} actions={actions} />
      <section className="account-section">
        <h3>Log out</h3>
        <p className="muted small">Ends your sessions everywhere. You go on chatting anonymously.</p>
        <div className="form-actions">
          <button
            type="button"
            className="btn btn-ghost btn-small"
            data-testid="logout-button"
            onClick={() => {
              void actions.logout();
              onClose();
            }}
          >
            Log out
          </button>
        </div>
      </section>
      <DeleteAccount profile={profile} actions={actions} />
    </div>
  );
}

function Done({ testId, message }: { testId: string; message: string | null }) {
  if (message === null) return null;
  return (
    <p className="done" data-testid={testId} role="status">
      {message}
    </p>
  );
}

function DisplayNameForm({ profile, actions }: { profile: Profile; actions: AccountActions }) {
  const [name, setName] = useState(profile.display_name);
  const [done, setDone] = useState<string | null>(null);
  const f = useForm("name");
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setDone(null);
    void f.run(async () => {
      await actions.rename(name);
      setDone("Saved. Rooms show your new name.");
    });
  };
  return (
    <form className="account-section" onSubmit={submit} noValidate>
      {/* rename reports its problems in words already: they belong to the name. */}
      <Input
        testId="account-name-input"
        label="Display name"
        value={name}
        onChange={setName}
        error={f.problem !== null ? f.problem.message : null}
        autoComplete="nickname"
        maxLength={MAX_NAME_CHARS * 2}
      />
      <div className="form-actions">
        <button type="submit" className="btn btn-primary btn-small" data-testid="account-name-save" disabled={f.busy}>
          Save name
        </button>
        <Done testId="account-name-done" message={done} />
      </div>
    </form>
  );
}

function PasswordForm({ actions }: { actions: AccountActions }) {
  const [oldPassword, setOld] = useState("");
  const [password, setPassword] = useState("");
  const [done, setDone] = useState<string | null>(null);
  const f = useForm("password");
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setDone(null);
    void f.run(async () => {
      if (password.length < 10) throw new FieldProblem("password", "Passwords have at least 10 characters.");
      const still = await actions.changePassword(oldPassword, password);
      setOld("");
      setPassword("");
      if (still) setDone("Password changed. Your other sessions are logged out.");
    });
  };
  return (
    <form className="account-section" onSubmit={submit} noValidate>
      <h3>Password</h3>
      <Input
        testId="old-password"
        label="Current password"
        type="password"
        value={oldPassword}
        onChange={setOld}
        error={f.errorFor("old_password")}
        autoComplete="current-password"
      />
      <Input
        testId="new-password"
        label="New password"
        type="password"
        value={password}
        onChange={setPassword}
        error={f.errorFor("password")}
        autoComplete="new-password"
        hint={passwordHint}
      />
      <FormError testId="password-error" message={f.errorFor("form")} />
      <div className="form-actions">
        <button type="submit" className="btn btn-primary btn-small" data-testid="password-save" disabled={f.busy}>
          Change password
        </button>
        <Done testId="password-done" message={done} />
      </div>
    </form>
  );
}

function TwoFactor({ profile, actions }: { profile: Profile; actions: AccountActions }) {
  const [passwordless, setPasswordless] = useState(false);
  const [enrolment, setEnrolment] = useState<Enrolment | null>(null);
  const [code, setCode] = useState("");
  const f = useForm("totp");

  if (profile.totp.enabled) {
    const disable = (e: FormEvent) => {
      e.preventDefault();
      void f.run(() => actions.disableTotp(code));
    };
    return (
      <form className="account-section" data-testid="totp-section" data-enabled="true" onSubmit={disable} noValidate>
        <h3>Two-factor</h3>
        <p className="small">
          <strong>On.</strong>{" "}
          {profile.totp.passwordless
            ? "You sign in with your username and a code from your authenticator app."
            : "Signing in takes your password and a code from your authenticator app."}
        </p>
        <Input
          testId="totp-disable-code"
          label="6-digit code, to turn it off"
          value={code}
          onChange={setCode}
          error={f.errorFor("code")}
          autoComplete="one-time-code"
          code
        />
        <FormError testId="totp-error" message={f.errorFor("form")} />
        <div className="form-actions">
          <button type="submit" className="btn btn-ghost btn-small" data-testid="totp-disable" disabled={f.busy}>
            Turn off two-factor
          </button>
        </div>
      </form>
    );
  }

  const start = () => {
    void f.run(async () => {
      setEnrolment(await actions.startTotp(passwordless));
      setCode("");
    });
  };
  const confirm = (e: FormEvent) => {
    e.preventDefault();
    void f.run(() => actions.confirmTotp(code));
  };

  if (enrolment === null) {
    return (
      <section className="account-section" data-testid="totp-section" data-enabled="false">
        <h3>Two-factor</h3>
        <p className="muted small">Off. With it on, signing in also takes a 6-digit code from an authenticator app.</p>
        <label className="check">
          <input
            type="checkbox"
            data-testid="totp-passwordless"
            checked={passwordless}
            onChange={(e) => setPasswordless(e.target.checked)}
          />
          Use the code instead of a password to sign in
        </label>
        <FormError testId="totp-error" message={f.errorFor("form")} />
        <div className="form-actions">
          <button type="button" className="btn btn-primary btn-small" data-testid="totp-start" disabled={f.busy} onClick={start}>
            Set up two-factor
          </button>
        </div>
      </section>
    );
  }

  return (
    <form className="account-section" data-testid="totp-section" data-enabled="false" onSubmit={confirm} noValidate>
      <h3>Two-factor</h3>
      <ol className="steps small">
        <li>Scan this code with your authenticator app.</li>
        <li>Enter the 6-digit code it shows to turn two-factor on. You then sign in again.</li>
      </ol>
      <img
        className="qr"
        data-testid="totp-qr"
        src={`data:image/png;base64,${enrolment.qr_png}`}
        alt="QR code of the two-factor secret, for an authenticator app"
        width={180}
        height={180}
      />
      <p className="small">
        Cannot scan? Enter this key by hand:{" "}
        <code className="secret" data-testid="totp-secret">
          {enrolment.secret}
        </code>
      </p>
      <Input
        testId="totp-code"
        label="6-digit code"
        value={code}
        onChange={setCode}
        error={f.errorFor("code")}
        autoComplete="one-time-code"
        code
        autoFocus
      />
      <FormError testId="totp-error" message={f.errorFor("form")} />
      <div className="form-actions">
        <button type="submit" className="btn btn-primary btn-small" data-testid="totp-confirm" disabled={f.busy}>
          Turn on two-factor
        </button>
        <button type="button" className="btn btn-ghost btn-small" onClick={() => setEnrolment(null)}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function DeleteAccount({ profile, actions }: { profile: Profile; actions: AccountActions }) {
  const [proof, setProof] = useState("");
  const [sure, setSure] = useState(false);
  const f = useForm("delete");
  const byCode = profile.totp.enabled && profile.totp.passwordless;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void f.run(async () => {
      if (!sure) throw new FieldProblem("form", "Tick the box to confirm first.");
      await actions.deleteAccount(byCode ? { totp: proof } : { password: proof });
    });
  };
  return (
    <form className="account-section danger-zone" onSubmit={submit} noValidate>
      <h3>Delete account</h3>
      <p className="muted small">Frees your username and display name. Messages already sent keep the name they were sent under.</p>
      <Input
        testId="delete-proof"
        label={byCode ? "6-digit code" : "Password"}
        type={byCode ? "text" : "password"}
        value={proof}
        onChange={setProof}
        error={f.problem !== null && f.problem.field !== "form" ? f.problem.message : null}
        autoComplete={byCode ? "one-time-code" : "current-password"}
        code={byCode}
      />
      <label className="check">
        <input type="checkbox" data-testid="delete-confirm" checked={sure} onChange={(e) => setSure(e.target.checked)} />
        Yes, delete my account for good
      </label>
      <FormError testId="delete-error" message={f.errorFor("form")} />
      <div className="form-actions">
        <button type="submit" className="btn btn-danger btn-small" data-testid="delete-button" disabled={f.busy}>
          Delete account
        </button>
      </div>
    </form>
  );
}
