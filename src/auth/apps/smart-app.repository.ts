import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';

/** A registered SMART app (a client of the authorization endpoint). Names and URIs are not PHI. */
export interface SmartApp {
  id: string;
  name: string;
  /** Where codes may be sent, compared exactly (RFC 6749 section 3.1.2, OAuth 2.1). */
  redirectUris: string[];
  /** The widest scope it may be granted, space-separated. */
  scope: string;
  active: boolean;
  createdAt: Date;
}

/** A one-time authorization code, as the token endpoint redeems it. */
export interface AuthorizationCode {
  appId: string;
  userId: string;
  redirectUri: string;
  scope: string;
  patient: string | null;
  /** An EHR launch's encounter in context. */
  encounter: string | null;
  /** BASE64URL(SHA-256(code_verifier)): PKCE S256. */
  codeChallenge: string;
  /** The OpenID Connect nonce the app sent, which its id_token repeats. */
  nonce: string | null;
  amr: string[];
  authTime: Date;
  /** The account's session epoch at the sign-in: a code from an earlier one is refused. */
  sessionEpoch: number;
  expiresAt: Date;
}

interface AppRow {
  id: string;
  name: string;
  redirect_uris: string[];
  scope: string;
  active: boolean;
  created_at: Date;
}

interface CodeRow {
  app_id: string;
  user_id: string;
  redirect_uri: string;
  scope: string;
  patient: string | null;
  encounter: string | null;
  code_challenge: string;
  nonce: string | null;
  amr: string[];
  auth_time: Date;
  session_epoch: number;
  expires_at: Date;
}

const APP_COLUMNS = 'id, name, redirect_uris, scope, active, created_at';
const CODE_COLUMNS =
  'app_id, user_id, redirect_uri, scope, patient, encounter, code_challenge, nonce, amr, auth_time, session_epoch, expires_at';

const toApp = (row: AppRow): SmartApp => ({
  id: row.id,
  name: row.name,
  redirectUris: row.redirect_uris,
  scope: row.scope,
  active: row.active,
  createdAt: row.created_at,
});

const toCode = (row: CodeRow): AuthorizationCode => ({
  appId: row.app_id,
  userId: row.user_id,
  redirectUri: row.redirect_uri,
  scope: row.scope,
  patient: row.patient,
  encounter: row.encounter,
  codeChallenge: row.code_challenge,
  nonce: row.nonce,
  amr: row.amr,
  authTime: row.auth_time,
  sessionEpoch: row.session_epoch,
  expiresAt: row.expires_at,
});

/** All SQL for SMART apps and the authorization codes issued to them. */
@Injectable()
export class SmartAppRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  async insert(app: SmartApp): Promise<void> {
    await this.dataSource.query(
      `INSERT INTO smart_app (${APP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)`,
      [app.id, app.name, app.redirectUris, app.scope, app.active, app.createdAt],
    );
  }

  async findById(id: string): Promise<SmartApp | undefined> {
    const rows = await this.dataSource.query<AppRow[]>(
      `SELECT ${APP_COLUMNS} FROM smart_app WHERE id = $1`,
      [id],
    );
    return rows[0] && toApp(rows[0]);
  }

  async findByName(name: string): Promise<SmartApp | undefined> {
    const rows = await this.dataSource.query<AppRow[]>(
      `SELECT ${APP_COLUMNS} FROM smart_app WHERE name = $1`,
      [name],
    );
    return rows[0] && toApp(rows[0]);
  }

  /** Whether the app exists and is active; also read for its access tokens (ClientStatus). */
  async isActive(id: string): Promise<boolean> {
    const rows = await this.dataSource.query<{ active: boolean }[]>(
      `SELECT active FROM smart_app WHERE id = $1`,
      [id],
    );
    return rows[0]?.active === true;
  }

  async list(): Promise<SmartApp[]> {
    const rows = await this.dataSource.query<AppRow[]>(
      `SELECT ${APP_COLUMNS} FROM smart_app ORDER BY name`,
    );
    return rows.map(toApp);
  }

  async setActive(id: string, active: boolean): Promise<void> {
    await this.dataSource.query(`UPDATE smart_app SET active = $2 WHERE id = $1`, [id, active]);
  }

  /** Stores a code by its hash; codes expired a day ago go at the same time. */
  async insertCode(hash: string, code: AuthorizationCode): Promise<void> {
    await this.dataSource.query(
      `DELETE FROM authorization_code WHERE expires_at < now() - interval '1 day'`,
    );
    await this.dataSource.query(
      `INSERT INTO authorization_code (code_hash, ${CODE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
      [
        hash,
        code.appId,
        code.userId,
        code.redirectUri,
        code.scope,
        code.patient,
        code.encounter,
        code.codeChallenge,
        code.nonce,
        code.amr,
        code.authTime,
        code.sessionEpoch,
        code.expiresAt,
      ],
    );
  }

  /**
   * Spends a code: the one statement that marks it used returns it, so two requests racing with
   * the same code cannot both get it. It records at once the token family the tokens will be
   * issued in. A code already used gives `spent`, the family of its tokens, and loses it: the
   * redemption under way then finds its family gone (see holdsFamily) and revokes it itself,
   * since its tokens may not be stored yet for this presentation to revoke.
   */
  async spendCode(
    hash: string,
    familyId: string,
  ): Promise<{ code: AuthorizationCode } | { spent: string | null } | undefined> {
    const [rows] = await this.dataSource.query<[CodeRow[], number]>(
      `UPDATE authorization_code SET used_at = now(), family_id = $2
        WHERE code_hash = $1 AND used_at IS NULL RETURNING ${CODE_COLUMNS}`,
      [hash, familyId],
    );
    if (rows[0]) return { code: toCode(rows[0]) };
    const [used] = await this.dataSource.query<[{ family_id: string | null }[], number]>(
      `WITH old AS (SELECT family_id FROM authorization_code WHERE code_hash = $1 FOR UPDATE)
       UPDATE authorization_code SET family_id = NULL FROM old
        WHERE code_hash = $1 RETURNING old.family_id`,
      [hash],
    );
    return used[0] ? { spent: used[0].family_id } : undefined;
  }

  /** Whether the code still names this token family: false once it was presented again. */
  async holdsFamily(hash: string, familyId: string): Promise<boolean> {
    const rows = await this.dataSource.query<unknown[]>(
      `SELECT 1 FROM authorization_code WHERE code_hash = $1 AND family_id = $2`,
      [hash, familyId],
    );
    return rows.length > 0;
  }
}
