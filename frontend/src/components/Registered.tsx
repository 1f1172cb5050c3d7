import { BadgeIcon } from "./Icons";

/**
 * RegisteredMark goes next to a registered account's display name: nobody
 * else can use that name. It says nothing about signatures, which the
 * message's own check mark does.
 */
export function RegisteredMark({ size = 16 }: { size?: number }) {
  return (
    <span className="registered" data-testid="registered-mark" title="Registered name" role="img" aria-label="Registered name">
      <BadgeIcon size={size} />
    </span>
  );
}
