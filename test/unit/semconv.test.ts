/**
 * src/translate/semconv.ts keeps the semantic-convention names as local constants (the package's
 * entries cost the idle bridge megabytes of heap): each must equal the package's export of the
 * same name, from the stable entry or, where it is not there, the incubating one.
 */
import * as stable from '@opentelemetry/semantic-conventions';
import * as incubating from '@opentelemetry/semantic-conventions/incubating';
import { describe, expect, it } from 'vitest';
import * as local from '../../src/translate/semconv.js';

describe('the local semconv constants', () => {
  it.each(Object.entries(local))('%s is the package value', (name, value) => {
    const pkg = (stable as Record<string, unknown>)[name] ?? (incubating as Record<string, unknown>)[name];
    expect(pkg).toBeDefined();
    expect(value).toBe(pkg);
  });
});
