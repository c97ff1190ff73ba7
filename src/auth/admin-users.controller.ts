import { Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { AuthenticatedUser } from './authenticated-user.js';
import { CurrentUser } from './current-user.decorator.js';
import { RequirePermission, RequireRecentMfa } from './permission.decorators.js';
import { UsersService, type UserSummary } from './users.service.js';

/** User administration over HTTP: admins only, with a recent MFA. */
@ApiTags('Administration')
@ApiBearerAuth()
@Controller('admin/users')
export class AdminUsersController {
  constructor(private readonly users: UsersService) {}

  @Get()
  @RequirePermission('users:manage')
  @RequireRecentMfa()
  @ApiOperation({ summary: 'List users' })
  list(): Promise<UserSummary[]> {
    return this.users.list();
  }

  @Post(':username/disable')
  @HttpCode(200)
  @RequirePermission('users:manage')
  @RequireRecentMfa()
  @ApiOperation({ summary: 'Disable a user, end their sessions and stop their Subscriptions' })
  disable(
    @CurrentUser() user: AuthenticatedUser,
    @Param('username') username: string,
  ): Promise<UserSummary> {
    return this.users.disable(username, user);
  }

  @Post(':username/enable')
  @HttpCode(200)
  @RequirePermission('users:manage')
  @RequireRecentMfa()
  @ApiOperation({ summary: 'Enable a disabled user again; they sign in afresh' })
  enable(@Param('username') username: string): Promise<UserSummary> {
    return this.users.enable(username);
  }
}
