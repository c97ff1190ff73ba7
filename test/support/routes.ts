import type { INestApplication } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { ModulesContainer } from '@nestjs/core';

export interface DeclaredRoute {
  /** `GET /fhir/:type/:id` */
  route: string;
  method: string;
  /** `/fhir/:type/:id` */
  path: string;
  handler: object;
  controller: object;
}

const VERBS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'];

/** Every route the application's controllers declare, one entry per path of a handler. */
export function declaredRoutes(app: INestApplication): DeclaredRoute[] {
  const found: DeclaredRoute[] = [];
  for (const module of app.get(ModulesContainer).values()) {
    for (const wrapper of module.controllers.values()) {
      const controller = wrapper.metatype as (new (...args: never[]) => unknown) | null;
      if (!controller) continue;
      const base = String(Reflect.getMetadata(PATH_METADATA, controller) ?? '');
      for (const name of Object.getOwnPropertyNames(controller.prototype)) {
        const handler = (controller.prototype as Record<string, unknown>)[name];
        if (name === 'constructor' || typeof handler !== 'function') continue;
        const paths = Reflect.getMetadata(PATH_METADATA, handler) as string | string[] | undefined;
        const verb = VERBS[Reflect.getMetadata(METHOD_METADATA, handler) as number];
        if (paths === undefined || verb === undefined) continue;
        for (const path of [paths].flat()) {
          const full =
            `/${[base, path].filter((part) => part && part !== '/').join('/')}`
              .replace(/\/+/g, '/')
              .replace(/\/$/, '') || '/';
          found.push({ route: `${verb} ${full}`, method: verb, path: full, handler, controller });
        }
      }
    }
  }
  return found;
}
